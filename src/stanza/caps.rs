//! XEP-0115 Entity Capabilities as clients announce them: the `<c/>` element of a presence,
//! and the check of a `disco#info` answer against the `ver` it claims (§5.1, with the
//! XEP-0128 extended forms of steps 6–7, and the §5.4 rules for ill-formed answers).

use super::disco::{DiscoError, DiscoInfo};
use super::forms::{DataForm, FORM_TYPE};
use crate::ns;
use crate::xml::Element;
use std::fmt;

/// The hash functions a `ver` may use (XEP-0115 §5.1 names them by their IANA names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algo {
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    /// The algorithm named by a `hash` attribute; `None` for ones we cannot check.
    pub fn parse(name: &str) -> Option<Algo> {
        Some(match name {
            "sha-1" => Algo::Sha1,
            "sha-256" => Algo::Sha256,
            "sha-512" => Algo::Sha512,
            _ => return None,
        })
    }

    /// Base64 of the digest of `data`.
    pub fn ver(self, data: &[u8]) -> String {
        use base64::Engine;
        let algo = match self {
            Algo::Sha1 => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            Algo::Sha256 => &ring::digest::SHA256,
            Algo::Sha512 => &ring::digest::SHA512,
        };
        base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(algo, data))
    }
}

/// What a `<c xmlns='http://jabber.org/protocol/caps'/>` in a presence announces.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caps {
    pub algo: Algo,
    pub node: String,
    pub ver: String,
}

impl Caps {
    /// The caps of a presence. Legacy caps (no `hash`, §8.3) and unknown hash functions
    /// are `None`: a `ver` that cannot be verified is never trusted.
    pub fn of_presence(presence: &Element) -> Option<Caps> {
        let c = presence.child("c", ns::CAPS)?;
        let algo = Algo::parse(c.attr("hash")?)?;
        let (node, ver) = (c.attr("node")?, c.attr("ver")?);
        if node.is_empty() || ver.is_empty() {
            return None;
        }
        Some(Caps {
            algo,
            node: node.to_owned(),
            ver: ver.to_owned(),
        })
    }

    /// The `node#ver` a `disco#info` query about these caps names (§6.2).
    pub fn query_node(&self) -> String {
        format!("{}#{}", self.node, self.ver)
    }
}

/// Why a `disco#info` answer does not match the `ver` it should.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapsError {
    /// Not a valid `disco#info` result (§5.4 rules 3.3 and 3.4 among them).
    Disco(DiscoError),
    /// An extended form is not a valid data form.
    Form,
    /// Two extended forms with the same `FORM_TYPE`, or a `FORM_TYPE` with several values
    /// (§5.4 rules 3.5 and 3.6).
    IllFormedForms,
    /// The answer hashes to another `ver`.
    Mismatch,
}

impl fmt::Display for CapsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapsError::Disco(e) => write!(f, "{e}"),
            CapsError::Form => f.write_str("an extended form is not a data form"),
            CapsError::IllFormedForms => f.write_str("ill-formed extended forms"),
            CapsError::Mismatch => f.write_str("the answer does not hash to the ver"),
        }
    }
}

impl std::error::Error for CapsError {}

/// The §5.1 verification string of a `disco#info` result, extended forms included:
/// identities and features (as [`DiscoInfo::caps_string`]), then for each form with a
/// hidden `FORM_TYPE`, sorted by it: the `FORM_TYPE`, then each other field by `var` with
/// its sorted values, every item followed by `<`.
pub fn verification_string(query: &Element) -> Result<(DiscoInfo, String), CapsError> {
    let info = DiscoInfo::try_from(query).map_err(CapsError::Disco)?;
    let mut s = info.caps_string();
    let mut forms: Vec<(String, DataForm)> = Vec::new();
    for x in query.elements().filter(|e| e.is("x", super::forms::NS)) {
        let form = DataForm::try_from(x).map_err(|_| CapsError::Form)?;
        if form.ty != "result" {
            continue;
        }
        let Some(ft) = form.field(FORM_TYPE) else {
            continue;
        };
        // §5.4 rule 3.7: a FORM_TYPE that is not hidden makes the form ignored.
        if ft.ty.as_deref() != Some("hidden") {
            continue;
        }
        if ft.values.len() != 1 {
            return Err(CapsError::IllFormedForms);
        }
        let name = ft.values[0].clone();
        if forms.iter().any(|(n, _)| *n == name) {
            return Err(CapsError::IllFormedForms);
        }
        forms.push((name, form));
    }
    forms.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, form) in forms {
        s.push_str(&name);
        s.push('<');
        let mut fields: Vec<_> = form.data_fields().collect();
        fields.sort_by(|a, b| a.var.cmp(&b.var));
        for f in fields {
            s.push_str(&f.var);
            s.push('<');
            let mut values: Vec<&str> = f.values.iter().map(String::as_str).collect();
            values.sort_unstable();
            for v in values {
                s.push_str(v);
                s.push('<');
            }
        }
    }
    Ok((info, s))
}

/// Checks a `disco#info` answer against `caps`; returns its features if it matches.
pub fn verify(query: &Element, caps: &Caps) -> Result<Vec<String>, CapsError> {
    let (info, s) = verification_string(query)?;
    if caps.algo.ver(s.as_bytes()) != caps.ver {
        return Err(CapsError::Mismatch);
    }
    Ok(info.features)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    fn parse(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    /// XEP-0115 §5.3, the complex example (Psi with a software-info form).
    const COMPLEX: &str = "<query xmlns='http://jabber.org/protocol/disco#info' \
        node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>\
        <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
        <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>\
        <feature var='http://jabber.org/protocol/caps'/>\
        <feature var='http://jabber.org/protocol/disco#info'/>\
        <feature var='http://jabber.org/protocol/disco#items'/>\
        <feature var='http://jabber.org/protocol/muc'/>\
        <x xmlns='jabber:x:data' type='result'>\
          <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
          <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>\
          <field var='os'><value>Mac</value></field>\
          <field var='os_version'><value>10.5.1</value></field>\
          <field var='software'><value>Psi</value></field>\
          <field var='software_version'><value>0.11</value></field>\
        </x></query>";

    fn caps(algo: Algo, ver: &str) -> Caps {
        Caps {
            algo,
            node: "http://psi-im.org".into(),
            ver: ver.into(),
        }
    }

    #[test]
    fn the_complex_example_of_xep_0115() {
        let q = parse(COMPLEX);
        let (_, s) = verification_string(&q).unwrap();
        assert_eq!(
            s,
            "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<\
             http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
             http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<\
             ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<\
             software_version<0.11<"
        );
        let features = verify(&q, &caps(Algo::Sha1, "q07IKJEyjvHSyhy//CH0CxmKi8w=")).unwrap();
        assert!(features.contains(&"http://jabber.org/protocol/muc".to_owned()));
        // The same string under another hash function.
        let v256 = Algo::Sha256.ver(s.as_bytes());
        assert!(verify(&q, &caps(Algo::Sha256, &v256)).is_ok());
        assert_eq!(
            verify(&q, &caps(Algo::Sha256, "q07IKJEyjvHSyhy//CH0CxmKi8w=")),
            Err(CapsError::Mismatch)
        );
    }

    #[test]
    fn a_lie_does_not_verify() {
        // One feature added to the answer: it no longer hashes to the announced ver.
        let lie = COMPLEX.replace(
            "<feature var='http://jabber.org/protocol/muc'/>",
            "<feature var='http://jabber.org/protocol/muc'/>\
             <feature var='http://jabber.org/protocol/tune+notify'/>",
        );
        assert_eq!(
            verify(
                &parse(&lie),
                &caps(Algo::Sha1, "q07IKJEyjvHSyhy//CH0CxmKi8w=")
            ),
            Err(CapsError::Mismatch)
        );
    }

    #[test]
    fn ill_formed_forms() {
        let twice = COMPLEX.replace(
            "</x></query>",
            "</x><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'>\
             <value>urn:xmpp:dataforms:softwareinfo</value></field></x></query>",
        );
        assert_eq!(
            verification_string(&parse(&twice)).unwrap_err(),
            CapsError::IllFormedForms
        );
        let two_values = COMPLEX.replace(
            "<value>urn:xmpp:dataforms:softwareinfo</value>",
            "<value>a</value><value>b</value>",
        );
        assert_eq!(
            verification_string(&parse(&two_values)).unwrap_err(),
            CapsError::IllFormedForms
        );
        // A FORM_TYPE that is not hidden: the form is ignored (§5.4 rule 3.7).
        let not_hidden = COMPLEX.replace(
            "<field var='FORM_TYPE' type='hidden'>",
            "<field var='FORM_TYPE'>",
        );
        let (_, s) = verification_string(&parse(&not_hidden)).unwrap();
        assert!(s.ends_with("http://jabber.org/protocol/muc<"), "{s}");
        let duplicate_feature = COMPLEX.replace(
            "<feature var='http://jabber.org/protocol/muc'/>",
            "<feature var='http://jabber.org/protocol/muc'/>\
             <feature var='http://jabber.org/protocol/muc'/>",
        );
        assert_eq!(
            verification_string(&parse(&duplicate_feature)).unwrap_err(),
            CapsError::Disco(DiscoError::Duplicate)
        );
    }

    #[test]
    fn caps_of_presence() {
        let p = parse(
            "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
             node='http://psi-im.org' ver='q07IKJEyjvHSyhy//CH0CxmKi8w='/></presence>",
        );
        let c = Caps::of_presence(&p).unwrap();
        assert_eq!(c, caps(Algo::Sha1, "q07IKJEyjvHSyhy//CH0CxmKi8w="));
        assert_eq!(
            c.query_node(),
            "http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w="
        );
        for bad in [
            "<presence/>",
            // Legacy caps: no hash.
            "<presence><c xmlns='http://jabber.org/protocol/caps' node='n' ver='1.0'/></presence>",
            "<presence><c xmlns='http://jabber.org/protocol/caps' hash='md5' node='n' ver='v'/></presence>",
            "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver=''/></presence>",
            "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' ver='v'/></presence>",
        ] {
            assert_eq!(Caps::of_presence(&parse(bad)), None, "{bad}");
        }
    }
}
