//! systemd service notifications (the `sd_notify(3)` protocol): one datagram of `KEY=value`
//! lines to the socket named by `$NOTIFY_SOCKET`, for `Type=notify` units.
//!
//! Without `NOTIFY_SOCKET` (not started by systemd, or by a unit of another type) every
//! function does nothing. A failed send is logged and otherwise ignored: notifications must
//! never take the server down.
//!
//! The unit is `Type=notify`, not `Type=notify-reload` (systemd ≥ 253; Debian bookworm has
//! 252), so after a reload the server sends `RELOADING=1`, reloads, then `READY=1` again.
//! `MONOTONIC_USEC=` is therefore not needed (and std offers no `CLOCK_MONOTONIC` reading
//! without `unsafe`).

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for services that may notify it.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Tells systemd the service is up: call once every listener is bound, and again after a
/// reload has finished.
pub fn ready() {
    notify("READY=1");
}

/// Tells systemd the service is shutting down (call on SIGTERM, before closing sessions).
pub fn stopping() {
    notify("STOPPING=1");
}

/// Tells systemd a reload (SIGHUP: certificate reload) has started; call [`ready`] when done.
pub fn reloading() {
    notify("RELOADING=1");
}

/// A one-line free-form status, shown by `systemctl status roost`.
pub fn status(text: &str) {
    // One line: a newline would start another (possibly meaningful) assignment.
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    notify(&format!("STATUS={line}"));
}

/// Sends `state` to `$NOTIFY_SOCKET`, if set; logs a failure.
fn notify(state: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    if let Err(e) = send_to(&socket, state) {
        log::warn!("systemd notification {state:?} to {socket:?} failed: {e}");
    }
}

/// Sends one notification datagram to the socket named `socket` (a path, or `@name` for a
/// Linux abstract socket).
fn send_to(socket: &OsStr, state: &str) -> io::Result<()> {
    let addr = socket_addr(socket)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
    }
    Ok(())
}

/// Parses `$NOTIFY_SOCKET`: an absolute path, or `@` and an abstract socket name.
fn socket_addr(socket: &OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket),
        Some(b'@') => abstract_addr(&bytes[1..]),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor @abstract",
        )),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &[u8]) -> io::Result<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &[u8]) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock
            .recv(&mut buf)
            .expect("a notification within the timeout");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn listener(sock: UnixDatagram) -> UnixDatagram {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        sock
    }

    #[test]
    fn path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = listener(UnixDatagram::bind(&path).unwrap());
        send_to(path.as_os_str(), "READY=1").unwrap();
        assert_eq!(recv(&sock), "READY=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("roost-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let sock = listener(UnixDatagram::bind_addr(&addr).unwrap());
        send_to(OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        assert_eq!(recv(&sock), "STOPPING=1");
    }

    #[test]
    fn bad_addresses() {
        assert!(send_to(OsStr::new("relative/path"), "READY=1").is_err());
        assert!(send_to(OsStr::new(""), "READY=1").is_err());
        let dir = tempfile::tempdir().unwrap();
        // Nobody listens there: an error, not a panic.
        assert!(send_to(dir.path().join("absent").as_os_str(), "READY=1").is_err());
    }

    /// The only test that touches the (process-global) environment; the others call
    /// `send_to` directly, so no lock is needed.
    #[test]
    fn public_functions_follow_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = listener(UnixDatagram::bind(&path).unwrap());

        // Unset: nothing is sent, nothing fails.
        std::env::remove_var(NOTIFY_SOCKET);
        ready();

        std::env::set_var(NOTIFY_SOCKET, &path);
        ready();
        reloading();
        status("serving example.org\nREADY=0");
        stopping();
        std::env::remove_var(NOTIFY_SOCKET);
        ready();

        assert_eq!(recv(&sock), "READY=1");
        assert_eq!(recv(&sock), "RELOADING=1");
        assert_eq!(recv(&sock), "STATUS=serving example.org READY=0");
        assert_eq!(recv(&sock), "STOPPING=1");
        sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        assert!(sock.recv(&mut buf).is_err(), "nothing sent once unset");
    }
}
