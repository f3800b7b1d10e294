//! XEP-0363 HTTP File Upload: the slot request (§4), the slot (§4) and the error payloads
//! (§5: `<file-too-large/>` with the largest size, `<retry/>` with a time).

use crate::xml::Element;
use std::fmt;

/// The protocol's namespace.
pub const NS: &str = "urn:xmpp:http:upload:0";

/// `<request xmlns='urn:xmpp:http:upload:0' filename='…' size='…' content-type='…'/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRequest {
    /// As the client gave it (the service sanitizes it).
    pub filename: String,
    pub size: u64,
    /// A media type, lowercased; `None` when absent or empty.
    pub content_type: Option<String>,
}

/// Why an element is not a valid slot request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    NotARequest,
    NoFilename,
    /// Missing, not a number, or 0.
    BadSize,
    /// Not `type/subtype` (RFC 9110 §8.3.1), or holding what would break a header line.
    BadContentType,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RequestError::NotARequest => "not an upload slot request",
            RequestError::NoFilename => "the request needs a filename",
            RequestError::BadSize => "the request needs a size in bytes, more than 0",
            RequestError::BadContentType => "content-type is not a media type",
        })
    }
}

impl std::error::Error for RequestError {}

/// True for a media type `type/subtype` (RFC 9110 §8.3.1 tokens) with optional
/// parameters, and nothing that could break a header line.
pub fn valid_content_type(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    if t.len() > 255 || t.bytes().any(|b| b.is_ascii_control()) {
        return false;
    }
    let essence = t.split(';').next().unwrap_or("").trim();
    matches!(essence.split_once('/'), Some((a, b)) if token(a) && token(b))
}

impl TryFrom<&Element> for SlotRequest {
    type Error = RequestError;

    fn try_from(e: &Element) -> Result<SlotRequest, RequestError> {
        if !e.is("request", NS) {
            return Err(RequestError::NotARequest);
        }
        let filename = e
            .attr("filename")
            .filter(|n| !n.trim().is_empty())
            .ok_or(RequestError::NoFilename)?
            .to_owned();
        let size = e
            .attr("size")
            .and_then(|s| s.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .ok_or(RequestError::BadSize)?;
        let content_type = match e.attr("content-type").map(str::trim) {
            None | Some("") => None,
            Some(t) if valid_content_type(t) => Some(t.to_ascii_lowercase()),
            Some(_) => return Err(RequestError::BadContentType),
        };
        Ok(SlotRequest {
            filename,
            size,
            content_type,
        })
    }
}

impl From<&SlotRequest> for Element {
    fn from(r: &SlotRequest) -> Element {
        let mut e = Element::new("request", NS)
            .with_attr("filename", r.filename.clone())
            .with_attr("size", r.size.to_string());
        if let Some(t) = &r.content_type {
            e.set_attr("content-type", t.clone());
        }
        e
    }
}

/// `<slot><put url='…'/><get url='…'/></slot>` (no extra PUT headers: roost's URLs carry
/// their secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    pub put: String,
    pub get: String,
}

impl From<&Slot> for Element {
    fn from(s: &Slot) -> Element {
        Element::new("slot", NS)
            .with_child(Element::new("put", NS).with_attr("url", s.put.clone()))
            .with_child(Element::new("get", NS).with_attr("url", s.get.clone()))
    }
}

/// §5: `<file-too-large><max-file-size>N</max-file-size></file-too-large>`.
pub fn file_too_large(max: u64) -> Element {
    Element::new("file-too-large", NS)
        .with_child(Element::new("max-file-size", NS).with_text(max.to_string()))
}

/// §5: `<retry stamp='…'/>`, when a quota allows the next upload (XEP-0082 time).
pub fn retry(stamp: String) -> Element {
    Element::new("retry", NS).with_attr("stamp", stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Element {
        crate::xml::parse::parse_element(&crate::xml::parse::Scope::client(), xml.as_bytes())
            .unwrap()
    }

    #[test]
    fn a_request_is_parsed() {
        let r = SlotRequest::try_from(&parse(
            "<request xmlns='urn:xmpp:http:upload:0' filename='très cool.jpg' size='23456' \
             content-type='image/JPEG'/>",
        ))
        .unwrap();
        assert_eq!(
            r,
            SlotRequest {
                filename: "très cool.jpg".into(),
                size: 23456,
                content_type: Some("image/jpeg".into()),
            }
        );
        let bare = SlotRequest::try_from(&parse(
            "<request xmlns='urn:xmpp:http:upload:0' filename='a' size='1' content-type=''/>",
        ))
        .unwrap();
        assert_eq!(bare.content_type, None);
    }

    #[test]
    fn a_request_and_a_slot_serialize() {
        let r = SlotRequest {
            filename: "a b.png".into(),
            size: 5,
            content_type: Some("image/png".into()),
        };
        let e = Element::from(&r);
        assert_eq!(SlotRequest::try_from(&e).unwrap(), r);
        let s = Element::from(&Slot {
            put: "https://h/upload/x/a".into(),
            get: "https://h/upload/x/a?".into(),
        });
        assert_eq!(
            s.to_client_string(),
            "<slot xmlns='urn:xmpp:http:upload:0'><put url='https://h/upload/x/a'/>\
             <get url='https://h/upload/x/a?'/></slot>"
        );
        assert_eq!(
            file_too_large(20000).to_client_string(),
            "<file-too-large xmlns='urn:xmpp:http:upload:0'><max-file-size>20000\
             </max-file-size></file-too-large>"
        );
    }

    #[test]
    fn invalid_requests_say_why() {
        let err = |xml: &str| SlotRequest::try_from(&parse(xml)).unwrap_err();
        let ns = "xmlns='urn:xmpp:http:upload:0'";
        assert_eq!(
            err(&format!("<request {ns} size='5'/>")),
            RequestError::NoFilename
        );
        assert_eq!(
            err(&format!("<request {ns} filename=' ' size='5'/>")),
            RequestError::NoFilename
        );
        assert_eq!(
            err(&format!("<request {ns} filename='a'/>")),
            RequestError::BadSize
        );
        assert_eq!(
            err(&format!("<request {ns} filename='a' size='0'/>")),
            RequestError::BadSize
        );
        assert_eq!(
            err(&format!("<request {ns} filename='a' size='-1'/>")),
            RequestError::BadSize
        );
        assert_eq!(
            err(&format!("<request {ns} filename='a' size='1e3'/>")),
            RequestError::BadSize
        );
        assert_eq!(
            err(&format!(
                "<request {ns} filename='a' size='5' content-type='no type'/>"
            )),
            RequestError::BadContentType
        );
        assert_eq!(
            err(&format!(
                "<request {ns} filename='a' size='5' content-type='text/html&#13;&#10;X: y'/>"
            )),
            RequestError::BadContentType
        );
        assert_eq!(
            err("<request xmlns='urn:xmpp:http:upload:1' filename='a' size='1'/>"),
            RequestError::NotARequest
        );
        // The old namespace of XEP-0363 < 0.3 is not served.
        assert_eq!(
            err("<request xmlns='urn:xmpp:http:upload' filename='a' size='1'/>"),
            RequestError::NotARequest
        );
        assert!(valid_content_type("text/plain; charset=utf-8"));
        assert!(!valid_content_type("image"));
    }
}
