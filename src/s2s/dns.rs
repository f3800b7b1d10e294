//! Finding a peer server (RFC 6120 §3.2, XEP-0368): SRV records `_xmpps-server._tcp` (direct
//! TLS) and `_xmpp-server._tcp` (STARTTLS) in RFC 2782 order, else the domain itself on 5269;
//! then each target's addresses through the system's host lookup (so `/etc/hosts` works),
//! tried with Happy Eyeballs (RFC 8305) between IPv6 and IPv4.
//!
//! The SRV query is a small stub client over UDP to the nameservers of `/etc/resolv.conf`
//! (simple-dns builds and parses the messages, resolv-conf reads the file): a full resolver
//! (hickory) would cost ~800 KiB of binary for a lookup made once per peer.

use simple_dns::{rdata::RData, Name, Packet, PacketFlag, Question, CLASS, QCLASS, QTYPE, TYPE};
use smol::future::FutureExt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One place to try: a host name and port, and whether TLS starts at once (XEP-0368).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub direct_tls: bool,
}

/// One SRV record's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// How long one DNS query may take (per nameserver).
const QUERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Happy Eyeballs' connection attempt delay (RFC 8305 §5).
const ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// How long connecting to one target may take in all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The targets for `domain`, in the order to try them.
pub async fn targets(domain: &str) -> Vec<Target> {
    let servers = nameservers(std::path::Path::new(RESOLV_CONF));
    let (tls, plain) = smol::future::zip(
        query_srv(&servers, &format!("_xmpps-server._tcp.{domain}")),
        query_srv(&servers, &format!("_xmpp-server._tcp.{domain}")),
    )
    .await;
    let mut all: Vec<(Srv, bool)> = Vec::new();
    all.extend(tls.into_iter().map(|s| (s, true)));
    all.extend(plain.into_iter().map(|s| (s, false)));
    // RFC 2782: a single record with target "." means the service is not offered.
    if all.len() == 1 && all[0].0.target == "." {
        return Vec::new();
    }
    all.retain(|(s, _)| s.target != ".");
    if all.is_empty() {
        return vec![Target {
            host: domain.to_owned(),
            port: 5269,
            direct_tls: false,
        }];
    }
    order(all, &mut |n| rand_u32() % n)
        .into_iter()
        .map(|(s, direct_tls)| Target {
            host: s.target,
            port: s.port,
            direct_tls,
        })
        .collect()
}

/// The system's resolver configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The nameservers of a resolv.conf file (port 53), or 127.0.0.1 if it names none.
pub fn nameservers(resolv_conf: &std::path::Path) -> Vec<SocketAddr> {
    let conf = std::fs::read(resolv_conf)
        .ok()
        .and_then(|b| resolv_conf::Config::parse(b).ok());
    match &conf {
        Some(c) if !c.nameservers.is_empty() => c
            .nameservers
            .iter()
            .map(|n| SocketAddr::new(IpAddr::from(n), 53))
            .collect(),
        _ => vec![SocketAddr::from(([127, 0, 0, 1], 53))],
    }
}

fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    crate::util::random::random(&mut b);
    u32::from_le_bytes(b)
}

/// RFC 2782 order: by priority; within one priority, a weighted random draw (`pick(n)`
/// gives a number below `n`); direct TLS before STARTTLS at equal priority and weight.
pub fn order(mut all: Vec<(Srv, bool)>, pick: &mut dyn FnMut(u32) -> u32) -> Vec<(Srv, bool)> {
    all.sort_by_key(|(s, tls)| (s.priority, !*tls));
    let mut out = Vec::with_capacity(all.len());
    while !all.is_empty() {
        let p = all[0].0.priority;
        let end = all
            .iter()
            .position(|(s, _)| s.priority != p)
            .unwrap_or(all.len());
        let mut group: Vec<(Srv, bool)> = all.drain(..end).collect();
        // Zero weights first, as RFC 2782 suggests, so they keep a small chance.
        group.sort_by_key(|(s, _)| s.weight != 0);
        while !group.is_empty() {
            let total: u32 = group.iter().map(|(s, _)| u32::from(s.weight)).sum();
            let i = if total == 0 {
                0
            } else {
                let r = pick(total + 1);
                let mut run = 0;
                group
                    .iter()
                    .position(|(s, _)| {
                        run += u32::from(s.weight);
                        run >= r
                    })
                    .unwrap_or(0)
            };
            out.push(group.remove(i));
        }
    }
    out
}

/// The SRV records for `name`, or none (no such name, no answer, no nameserver).
async fn query_srv(servers: &[SocketAddr], name: &str) -> Vec<Srv> {
    query(servers, name, TYPE::SRV)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| match r {
            Record::Srv(s) => Some(s),
            Record::Addr(_) => None,
        })
        .collect()
}

/// One answer record of the kinds asked for here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Srv(Srv),
    /// An A or AAAA record (a CNAME's target's, when the nameserver follows it).
    Addr(IpAddr),
}

/// The records of type `ty` (SRV, A or AAAA) for `name`: empty if the name or record does
/// not exist, `None` if no nameserver answered (each is given 3 s, at most three are
/// asked).
pub async fn query(servers: &[SocketAddr], name: &str, ty: TYPE) -> Option<Vec<Record>> {
    let qname = Name::new(name).ok()?;
    let id = rand_u32() as u16;
    let mut q = Packet::new_query(id);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        qname,
        QTYPE::TYPE(ty),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    let bytes = q.build_bytes_vec().ok()?;
    for server in servers.iter().take(3) {
        let ask = ask(*server, &bytes, id);
        let timeout = async {
            smol::Timer::after(QUERY_TIMEOUT).await;
            None
        };
        if let Some(answer) = ask.or(timeout).await {
            return Some(answer);
        }
    }
    None
}

/// One query to one nameserver; `None` if it did not answer usefully.
async fn ask(server: SocketAddr, query: &[u8], id: u16) -> Option<Vec<Record>> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = async_net::UdpSocket::bind(bind).await.ok()?;
    sock.connect(server).await.ok()?;
    sock.send(query).await.ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await.ok()?;
        if let Some(answer) = parse_answer(&buf[..n], id) {
            return answer;
        }
    }
}

/// The records in a reply to query `id`: `None` if it is not that reply (keep waiting),
/// `Some(None)` if the server failed (try the next one).
fn parse_answer(reply: &[u8], id: u16) -> Option<Option<Vec<Record>>> {
    let p = Packet::parse(reply).ok()?;
    if p.id() != id || !p.has_flags(PacketFlag::RESPONSE) {
        return None;
    }
    use simple_dns::RCODE;
    match p.rcode() {
        RCODE::NoError | RCODE::NameError => {}
        _ => return Some(None),
    }
    Some(Some(
        p.answers
            .iter()
            .filter_map(|rr| match &rr.rdata {
                RData::SRV(s) => Some(Record::Srv(Srv {
                    priority: s.priority,
                    weight: s.weight,
                    port: s.port,
                    target: s.target.to_string().trim_end_matches('.').to_owned(),
                })),
                RData::A(a) => Some(Record::Addr(IpAddr::from(std::net::Ipv4Addr::from(
                    a.address,
                )))),
                RData::AAAA(a) => Some(Record::Addr(IpAddr::from(std::net::Ipv6Addr::from(
                    a.address,
                )))),
                _ => None,
            })
            .collect(),
    ))
}

/// Addresses of `host` through the system's lookup (getaddrinfo: `/etc/hosts`, then DNS),
/// interleaved IPv6, IPv4, IPv6, … (RFC 8305 §4).
pub async fn addresses(host: &str, port: u16) -> Vec<SocketAddr> {
    let all = async_net::resolve((host, port)).await.unwrap_or_default();
    let (v6, v4): (Vec<SocketAddr>, Vec<SocketAddr>) = all.into_iter().partition(|a| a.is_ipv6());
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

/// Connects to the first of `addrs` that answers: a new attempt starts every 250 ms while
/// earlier ones are still pending (Happy Eyeballs), all bounded by 10 s.
pub async fn connect(addrs: &[SocketAddr]) -> std::io::Result<async_net::TcpStream> {
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ));
    }
    let (tx, rx) = smol::channel::bounded(addrs.len());
    let mut tasks = Vec::with_capacity(addrs.len());
    for (i, addr) in addrs.iter().copied().enumerate() {
        let tx = tx.clone();
        tasks.push(smol::spawn(async move {
            smol::Timer::after(ATTEMPT_DELAY * i as u32).await;
            let _ = tx.send(async_net::TcpStream::connect(addr).await).await;
        }));
    }
    drop(tx);
    let first = async {
        let mut last = None;
        while let Ok(r) = rx.recv().await {
            match r {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::ErrorKind::NotFound.into()))
    };
    let timeout = async {
        smol::Timer::after(CONNECT_TIMEOUT).await;
        Err(std::io::ErrorKind::TimedOut.into())
    };
    let r = first.or(timeout).await;
    // Dropping the tasks cancels the attempts still running.
    drop(tasks);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, weight: u16, target: &str) -> (Srv, bool) {
        (
            Srv {
                priority,
                weight,
                port: 5269,
                target: target.into(),
            },
            false,
        )
    }

    #[test]
    fn srv_records_are_ordered_by_priority_then_weight() {
        let all = vec![
            srv(20, 0, "c"),
            srv(10, 1, "b"),
            srv(10, 9, "a"),
            (
                Srv {
                    priority: 20,
                    weight: 0,
                    port: 5270,
                    target: "d".into(),
                },
                true,
            ),
        ];
        // Always the largest draw: the last of the weighted run.
        let names = |v: Vec<(Srv, bool)>| v.into_iter().map(|s| s.0.target).collect::<Vec<_>>();
        assert_eq!(
            names(order(all.clone(), &mut |n| n - 1)),
            ["a", "b", "d", "c"]
        );
        // Always the smallest draw: the first with weight.
        assert_eq!(names(order(all, &mut |_| 1)), ["b", "a", "d", "c"]);
    }

    #[test]
    fn a_reply_is_parsed_and_other_replies_ignored() {
        let mut reply = Packet::new_reply(7);
        reply.answers.push(simple_dns::ResourceRecord::new(
            Name::new_unchecked("_xmpp-server._tcp.example.org"),
            CLASS::IN,
            60,
            RData::SRV(simple_dns::rdata::SRV {
                priority: 5,
                weight: 1,
                port: 5269,
                target: Name::new_unchecked("xmpp.example.org"),
            }),
        ));
        let bytes = reply.build_bytes_vec().unwrap();
        assert_eq!(parse_answer(&bytes, 8), None);
        let got = parse_answer(&bytes, 7).unwrap().unwrap();
        assert_eq!(
            got,
            [Record::Srv(Srv {
                priority: 5,
                weight: 1,
                port: 5269,
                target: "xmpp.example.org".into()
            })]
        );
        assert_eq!(parse_answer(b"garbage", 7), None);
    }

    #[test]
    fn addresses_alternate_families() {
        let a = smol::block_on(addresses("127.0.0.1", 5269));
        assert_eq!(a, ["127.0.0.1:5269".parse::<SocketAddr>().unwrap()]);
    }
}
