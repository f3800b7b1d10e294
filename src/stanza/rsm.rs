//! XEP-0059 Result Set Management: the `<set/>` a requester sends to page through a result
//! set (`max`, `after`, `before`, an empty `<before/>` for the last page, `index`), and the
//! `<set/>` a responder returns (`first` with its index, `last`, `count`).

use crate::xml::Element;
use std::fmt;

/// The RSM namespace.
pub const NS: &str = "http://jabber.org/protocol/rsm";

/// Where a backwards page ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Before {
    /// An empty `<before/>`: the last page of the result set (XEP-0059 §2.5).
    Last,
    /// The page just before this item.
    Id(String),
}

/// A requester's `<set/>` (XEP-0059 §2).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetRequest {
    pub max: Option<usize>,
    pub after: Option<String>,
    pub before: Option<Before>,
    /// Out-of-order paging (XEP-0059 §2.4).
    pub index: Option<usize>,
}

/// A responder's `<set/>` (XEP-0059 §2.1). Empty for an empty page but for `count`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetResult {
    pub first: Option<String>,
    /// The `index` attribute of `<first/>`: the first item's position in the whole set.
    pub first_index: Option<usize>,
    pub last: Option<String>,
    pub count: Option<usize>,
}

/// Why a requester's `<set/>` is invalid; every variant is `bad-request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RsmError {
    /// Not `<set xmlns='http://jabber.org/protocol/rsm'/>`.
    NotASet,
    /// `<max/>` or `<index/>` is not a non-negative integer.
    NotANumber(&'static str),
    /// `<after/>` needs the UID of an item.
    EmptyAfter,
}

impl fmt::Display for RsmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RsmError::NotASet => f.write_str("not a result set management <set/>"),
            RsmError::NotANumber(e) => write!(f, "<{e}/> must be a non-negative integer"),
            RsmError::EmptyAfter => f.write_str("<after/> must name an item"),
        }
    }
}

impl std::error::Error for RsmError {}

fn number(e: &Element, name: &'static str) -> Result<Option<usize>, RsmError> {
    e.child(name, NS)
        .map(|c| {
            c.text()
                .trim()
                .parse()
                .map_err(|_| RsmError::NotANumber(name))
        })
        .transpose()
}

impl TryFrom<&Element> for SetRequest {
    type Error = RsmError;

    fn try_from(e: &Element) -> Result<SetRequest, RsmError> {
        if !e.is("set", NS) {
            return Err(RsmError::NotASet);
        }
        let after = match e.child("after", NS) {
            Some(a) if a.text().is_empty() => return Err(RsmError::EmptyAfter),
            Some(a) => Some(a.text()),
            None => None,
        };
        let before = e.child("before", NS).map(|b| match b.text() {
            t if t.is_empty() => Before::Last,
            t => Before::Id(t),
        });
        Ok(SetRequest {
            max: number(e, "max")?,
            after,
            before,
            index: number(e, "index")?,
        })
    }
}

impl From<&SetRequest> for Element {
    fn from(r: &SetRequest) -> Element {
        let mut set = Element::new("set", NS);
        if let Some(m) = r.max {
            set.push(Element::new("max", NS).with_text(m.to_string()));
        }
        if let Some(a) = &r.after {
            set.push(Element::new("after", NS).with_text(a.clone()));
        }
        match &r.before {
            Some(Before::Last) => set.push(Element::new("before", NS)),
            Some(Before::Id(b)) => set.push(Element::new("before", NS).with_text(b.clone())),
            None => {}
        }
        if let Some(i) = r.index {
            set.push(Element::new("index", NS).with_text(i.to_string()));
        }
        set
    }
}

impl From<&SetResult> for Element {
    fn from(r: &SetResult) -> Element {
        let mut set = Element::new("set", NS);
        if let Some(first) = &r.first {
            let mut e = Element::new("first", NS).with_text(first.clone());
            if let Some(i) = r.first_index {
                e.set_attr("index", i.to_string());
            }
            set.push(e);
        }
        if let Some(last) = &r.last {
            set.push(Element::new("last", NS).with_text(last.clone()));
        }
        if let Some(c) = r.count {
            set.push(Element::new("count", NS).with_text(c.to_string()));
        }
        set
    }
}

impl TryFrom<&Element> for SetResult {
    type Error = RsmError;

    fn try_from(e: &Element) -> Result<SetResult, RsmError> {
        if !e.is("set", NS) {
            return Err(RsmError::NotASet);
        }
        let first = e.child("first", NS);
        Ok(SetResult {
            first: first.map(Element::text),
            first_index: first
                .and_then(|f| f.attr("index"))
                .map(|i| i.parse().map_err(|_| RsmError::NotANumber("first")))
                .transpose()?,
            last: e.child("last", NS).map(Element::text),
            count: number(e, "count")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse::{parse_element, Scope};

    fn parse(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    #[test]
    fn parses_requests() {
        let r = SetRequest::try_from(&parse(
            "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>a1</after></set>",
        ))
        .unwrap();
        assert_eq!(r.max, Some(10));
        assert_eq!(r.after.as_deref(), Some("a1"));
        assert_eq!(r.before, None);
        let r = SetRequest::try_from(&parse(
            "<set xmlns='http://jabber.org/protocol/rsm'><max> 5 </max><before/></set>",
        ))
        .unwrap();
        assert_eq!(r.max, Some(5));
        assert_eq!(r.before, Some(Before::Last));
        let r = SetRequest::try_from(&parse(
            "<set xmlns='http://jabber.org/protocol/rsm'><before>b9</before><index>3</index></set>",
        ))
        .unwrap();
        assert_eq!(r.before, Some(Before::Id("b9".into())));
        assert_eq!(r.index, Some(3));
        assert_eq!(r.max, None);
    }

    #[test]
    fn request_round_trips() {
        for r in [
            SetRequest::default(),
            SetRequest {
                max: Some(0),
                after: Some("x".into()),
                before: None,
                index: None,
            },
            SetRequest {
                max: Some(250),
                after: None,
                before: Some(Before::Last),
                index: Some(7),
            },
            SetRequest {
                max: None,
                after: None,
                before: Some(Before::Id("y".into())),
                index: None,
            },
        ] {
            assert_eq!(SetRequest::try_from(&Element::from(&r)), Ok(r));
        }
    }

    #[test]
    fn rejects_invalid_requests() {
        let cases = [
            ("<set xmlns='urn:other'/>", RsmError::NotASet),
            (
                "<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>",
                RsmError::NotANumber("max"),
            ),
            (
                "<set xmlns='http://jabber.org/protocol/rsm'><max>ten</max></set>",
                RsmError::NotANumber("max"),
            ),
            (
                "<set xmlns='http://jabber.org/protocol/rsm'><index/></set>",
                RsmError::NotANumber("index"),
            ),
            (
                "<set xmlns='http://jabber.org/protocol/rsm'><after/></set>",
                RsmError::EmptyAfter,
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(SetRequest::try_from(&parse(xml)), Err(want), "{xml}");
        }
    }

    #[test]
    fn result_serializes_and_round_trips() {
        let r = SetResult {
            first: Some("f".into()),
            first_index: Some(0),
            last: Some("l".into()),
            count: Some(20),
        };
        let e = Element::from(&r);
        assert_eq!(
            e.to_client_string(),
            "<set xmlns='http://jabber.org/protocol/rsm'><first index='0'>f</first>\
             <last>l</last><count>20</count></set>"
        );
        assert_eq!(SetResult::try_from(&e), Ok(r));
        // An empty page: only the count.
        let empty = SetResult {
            count: Some(0),
            ..SetResult::default()
        };
        assert_eq!(
            Element::from(&empty).to_client_string(),
            "<set xmlns='http://jabber.org/protocol/rsm'><count>0</count></set>"
        );
    }
}
