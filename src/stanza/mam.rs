//! XEP-0313 Message Archive Management as typed views: the `<query/>` with its XEP-0004
//! filter form (§4.1: `with`, `start`, `end`; `#extended`: `before-id`, `after-id`, `ids`),
//! its XEP-0059 `<set/>` and `<flip-page/>`; the `<result/>` wrapping each archived
//! message, the `<fin/>` ending a page, the archive `<metadata/>` (§5); and the archiving
//! preferences `<prefs/>` of XEP-0441 (same namespace).

use super::forms::{self, DataForm, Field, FormError};
use super::rsm::{self, RsmError, SetRequest, SetResult};
use crate::jid::Jid;
use crate::xml::Element;
use std::fmt;

/// The MAM namespace (query, result, fin, metadata, prefs).
pub const NS: &str = "urn:xmpp:mam:2";
/// The disco feature for `before-id`, `after-id`, `ids`, flipped pages and metadata.
pub const NS_EXTENDED: &str = "urn:xmpp:mam:2#extended";
/// XEP-0122 validation, for the open `ids` list of the query form.
const NS_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";

/// An archive query (XEP-0313 §4): filters, paging and order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// Echoed in every `<result/>` so the client can match them to its query.
    pub queryid: Option<String>,
    /// Messages to or from this JID: any resource of a bare JID, exactly a full JID.
    pub with: Option<Jid>,
    /// Unix seconds, inclusive.
    pub start: Option<i64>,
    /// Unix seconds, inclusive.
    pub end: Option<i64>,
    /// Only messages after this archive id (exclusive).
    pub after_id: Option<String>,
    /// Only messages before this archive id (exclusive).
    pub before_id: Option<String>,
    /// Only these archive ids.
    pub ids: Vec<String>,
    pub rsm: SetRequest,
    /// Send the page newest first (its content is the same).
    pub flip_page: bool,
}

/// Why a query is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryError {
    /// Not `<query xmlns='urn:xmpp:mam:2'/>`.
    NotAQuery,
    /// The data form is invalid or not a MAM form.
    BadForm(String),
    /// A field the server does not know: `feature-not-implemented` (§4.1.5).
    UnknownField(String),
    /// `with` is not a JID.
    BadJid(String),
    /// `start` or `end` is not a XEP-0082 DateTime.
    BadDate(&'static str),
    /// The `<set/>` is invalid.
    Rsm(RsmError),
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::NotAQuery => f.write_str("not an archive query"),
            QueryError::BadForm(e) => write!(f, "invalid query form: {e}"),
            QueryError::UnknownField(v) => write!(f, "unknown query field '{v}'"),
            QueryError::BadJid(j) => write!(f, "'with' is not a valid JID: {j}"),
            QueryError::BadDate(field) => write!(f, "'{field}' is not a XEP-0082 date-time"),
            QueryError::Rsm(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for QueryError {}

impl From<FormError> for QueryError {
    fn from(e: FormError) -> QueryError {
        QueryError::BadForm(e.to_string())
    }
}

impl From<RsmError> for QueryError {
    fn from(e: RsmError) -> QueryError {
        QueryError::Rsm(e)
    }
}

impl Query {
    /// True if the query pages backwards (RSM `<before/>`): the page ends where it says
    /// and the result is complete when the start of the archive is reached.
    pub fn backwards(&self) -> bool {
        self.rsm.before.is_some()
    }

    /// Applies one field of the submitted form.
    fn apply(&mut self, field: &Field) -> Result<(), QueryError> {
        let value = field.value().map(str::to_owned);
        match field.var.as_str() {
            "FORM_TYPE" => {}
            "with" => {
                self.with = value
                    .map(|v| Jid::parse(&v).map_err(|_| QueryError::BadJid(v)))
                    .transpose()?
            }
            "start" => self.start = date(value, "start")?,
            "end" => self.end = date(value, "end")?,
            "after-id" => self.after_id = value,
            "before-id" => self.before_id = value,
            "ids" => {
                self.ids = field
                    .values
                    .iter()
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .collect()
            }
            other => return Err(QueryError::UnknownField(other.to_owned())),
        }
        Ok(())
    }
}

fn date(value: Option<String>, field: &'static str) -> Result<Option<i64>, QueryError> {
    value
        .map(|v| crate::util::datetime::parse(v.trim()).ok_or(QueryError::BadDate(field)))
        .transpose()
}

impl TryFrom<&Element> for Query {
    type Error = QueryError;

    fn try_from(e: &Element) -> Result<Query, QueryError> {
        if !e.is("query", NS) {
            return Err(QueryError::NotAQuery);
        }
        let mut q = Query {
            queryid: e.attr("queryid").map(str::to_owned),
            ..Query::default()
        };
        if let Some(x) = e.child("x", forms::NS) {
            let form = DataForm::try_from(x)?;
            if form.form_type() != Some(NS) {
                return Err(QueryError::BadForm(format!("FORM_TYPE must be {NS}")));
            }
            for field in &form.fields {
                q.apply(field)?;
            }
        }
        if let Some(set) = e.child("set", rsm::NS) {
            q.rsm = SetRequest::try_from(set)?;
        }
        q.flip_page = e.child("flip-page", NS).is_some();
        Ok(q)
    }
}

impl From<&Query> for Element {
    fn from(q: &Query) -> Element {
        let mut e = Element::new("query", NS);
        if let Some(id) = &q.queryid {
            e.set_attr("queryid", id.clone());
        }
        let mut form = DataForm::with_form_type("submit", NS);
        let mut add = |var: &str, values: Vec<String>| {
            if !values.is_empty() {
                form.fields.push(Field {
                    var: var.to_owned(),
                    ty: None,
                    values,
                    extra: Vec::new(),
                });
            }
        };
        add("with", q.with.iter().map(|j| j.to_string()).collect());
        add(
            "start",
            q.start
                .map(crate::util::datetime::format)
                .into_iter()
                .collect(),
        );
        add(
            "end",
            q.end
                .map(crate::util::datetime::format)
                .into_iter()
                .collect(),
        );
        add("after-id", q.after_id.iter().cloned().collect());
        add("before-id", q.before_id.iter().cloned().collect());
        add("ids", q.ids.clone());
        if form.fields.len() > 1 {
            e.push(Element::from(&form));
        }
        if q.rsm != SetRequest::default() {
            e.push(Element::from(&q.rsm));
        }
        if q.flip_page {
            e.push(Element::new("flip-page", NS));
        }
        e
    }
}

/// The form a client gets for `<iq type='get'><query xmlns='urn:xmpp:mam:2'/></iq>`
/// (§4.1.5): every field roost filters on, none of them required.
pub fn query_form() -> DataForm {
    let mut form = DataForm::with_form_type("form", NS);
    for (var, ty) in [
        ("with", "jid-single"),
        ("start", "text-single"),
        ("end", "text-single"),
        ("before-id", "text-single"),
        ("after-id", "text-single"),
    ] {
        form.fields.push(Field::new(var, ty));
    }
    // §4.1.5: the possible ids are not listed; the list is open.
    let mut ids = Field::new("ids", "list-multi");
    ids.extra.push(
        Element::new("validate", NS_VALIDATE)
            .with_attr("datatype", "xs:string")
            .with_child(Element::new("open", NS_VALIDATE)),
    );
    form.fields.push(ids);
    form
}

/// `<result xmlns='urn:xmpp:mam:2' queryid='…' id='…'>` around a forwarded, dated message
/// (§4.2).
pub fn result(queryid: Option<&str>, id: &str, stamp: &str, message: Element) -> Element {
    let mut r = Element::new("result", NS);
    if let Some(q) = queryid {
        r.set_attr("queryid", q);
    }
    r.set_attr("id", id);
    r.push(super::forward::forwarded(message, Some(stamp)));
    r
}

/// The `<fin/>` in the IQ result that ends a page (§4.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fin {
    /// The page was not cut short by its size: no more results in the paging direction.
    pub complete: bool,
    pub set: SetResult,
}

impl From<&Fin> for Element {
    fn from(fin: &Fin) -> Element {
        let mut e = Element::new("fin", NS);
        if fin.complete {
            e.set_attr("complete", "true");
        }
        e.push(Element::from(&fin.set));
        e
    }
}

impl TryFrom<&Element> for Fin {
    type Error = QueryError;

    fn try_from(e: &Element) -> Result<Fin, QueryError> {
        if !e.is("fin", NS) {
            return Err(QueryError::NotAQuery);
        }
        Ok(Fin {
            complete: matches!(e.attr("complete"), Some("true" | "1")),
            set: e
                .child("set", rsm::NS)
                .map(SetResult::try_from)
                .transpose()?
                .unwrap_or_default(),
        })
    }
}

/// The archive's first and last messages, as `(id, unix seconds)` (§5); both `None` for
/// an empty archive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    pub start: Option<(String, i64)>,
    pub end: Option<(String, i64)>,
}

impl From<&Metadata> for Element {
    fn from(m: &Metadata) -> Element {
        let mut e = Element::new("metadata", NS);
        for (name, item) in [("start", &m.start), ("end", &m.end)] {
            if let Some((id, ts)) = item {
                e.push(
                    Element::new(name, NS)
                        .with_attr("id", id.clone())
                        .with_attr("timestamp", crate::util::datetime::format(*ts)),
                );
            }
        }
        e
    }
}

/// XEP-0441 §3: what is archived for JIDs in neither list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultMode {
    /// Everything (roost's default).
    #[default]
    Always,
    /// Nothing.
    Never,
    /// Only messages with contacts in the roster.
    Roster,
}

impl DefaultMode {
    /// The `default` attribute's value.
    pub fn name(self) -> &'static str {
        match self {
            DefaultMode::Always => "always",
            DefaultMode::Never => "never",
            DefaultMode::Roster => "roster",
        }
    }

    /// Parses a `default` attribute.
    pub fn parse(s: &str) -> Option<DefaultMode> {
        match s {
            "always" => Some(DefaultMode::Always),
            "never" => Some(DefaultMode::Never),
            "roster" => Some(DefaultMode::Roster),
            _ => None,
        }
    }
}

/// Archiving preferences (XEP-0441): a default and JIDs always or never archived, each a
/// normalized bare or full JID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefs {
    pub default: DefaultMode,
    pub always: Vec<String>,
    pub never: Vec<String>,
}

/// Why a `<prefs/>` is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefsError {
    /// Not `<prefs xmlns='urn:xmpp:mam:2'/>`.
    NotPrefs,
    /// `default` missing or not `always`, `never` or `roster`.
    BadDefault,
    /// A `<jid/>` that is not a JID: `jid-malformed`.
    BadJid(String),
}

impl fmt::Display for PrefsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefsError::NotPrefs => f.write_str("not archiving preferences"),
            PrefsError::BadDefault => f.write_str("default must be always, never or roster"),
            PrefsError::BadJid(j) => write!(f, "not a valid JID: {j}"),
        }
    }
}

impl std::error::Error for PrefsError {}

fn jid_list(prefs: &Element, name: &str) -> Result<Vec<String>, PrefsError> {
    let mut out: Vec<String> = Vec::new();
    for j in prefs
        .child(name, NS)
        .into_iter()
        .flat_map(|l| l.elements().filter(|e| e.is("jid", NS)))
    {
        let text = j.text();
        let jid = Jid::parse(text.trim()).map_err(|_| PrefsError::BadJid(text.clone()))?;
        let s = jid.to_string();
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

impl TryFrom<&Element> for Prefs {
    type Error = PrefsError;

    fn try_from(e: &Element) -> Result<Prefs, PrefsError> {
        if !e.is("prefs", NS) {
            return Err(PrefsError::NotPrefs);
        }
        Ok(Prefs {
            default: e
                .attr("default")
                .and_then(DefaultMode::parse)
                .ok_or(PrefsError::BadDefault)?,
            always: jid_list(e, "always")?,
            never: jid_list(e, "never")?,
        })
    }
}

impl From<&Prefs> for Element {
    fn from(p: &Prefs) -> Element {
        let list = |name: &str, jids: &[String]| {
            let mut l = Element::new(name, NS);
            for j in jids {
                l.push(Element::new("jid", NS).with_text(j.clone()));
            }
            l
        };
        Element::new("prefs", NS)
            .with_attr("default", p.default.name())
            .with_child(list("always", &p.always))
            .with_child(list("never", &p.never))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stanza::rsm::Before;
    use crate::xml::parse::{parse_element, Scope};

    fn parse(xml: &str) -> Element {
        parse_element(&Scope::client(), xml.as_bytes()).unwrap()
    }

    fn form(fields: &str) -> String {
        format!(
            "<query xmlns='urn:xmpp:mam:2' queryid='q1'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
             {fields}</x></query>"
        )
    }

    #[test]
    fn parses_a_query_with_every_filter() {
        let q = Query::try_from(&parse(&form(
            "<field var='with'><value>Juliet@Capulet.lit</value></field>\
             <field var='start'><value>2010-06-07T00:00:00Z</value></field>\
             <field var='end'><value>2010-07-07T13:23:54+02:00</value></field>\
             <field var='after-id'><value>a1</value></field>\
             <field var='before-id'><value>b2</value></field>\
             <field var='ids'><value>i1</value><value>i2</value></field>",
        )))
        .unwrap();
        assert_eq!(q.queryid.as_deref(), Some("q1"));
        assert_eq!(q.with.as_ref().unwrap().as_str(), "juliet@capulet.lit");
        assert_eq!(
            q.start,
            crate::util::datetime::parse("2010-06-07T00:00:00Z")
        );
        assert_eq!(q.end, crate::util::datetime::parse("2010-07-07T11:23:54Z"));
        assert_eq!(q.after_id.as_deref(), Some("a1"));
        assert_eq!(q.before_id.as_deref(), Some("b2"));
        assert_eq!(q.ids, vec!["i1", "i2"]);
        assert!(!q.flip_page);
        assert!(!q.backwards());
    }

    #[test]
    fn parses_paging_and_empty_fields() {
        let q = Query::try_from(&parse(
            "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>\
             <field var='with'/><field var='start'><value/></field></x>\
             <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><before/></set>\
             <flip-page/></query>",
        ))
        .unwrap();
        assert_eq!(q.with, None);
        assert_eq!(q.start, None);
        assert_eq!(q.rsm.max, Some(10));
        assert_eq!(q.rsm.before, Some(Before::Last));
        assert!(q.backwards());
        assert!(q.flip_page);
        // No form at all: everything.
        let q = Query::try_from(&parse("<query xmlns='urn:xmpp:mam:2'/>")).unwrap();
        assert_eq!(q, Query::default());
    }

    #[test]
    fn query_round_trips() {
        let q = Query {
            queryid: Some("x".into()),
            with: Some(Jid::parse("a@b/c").unwrap()),
            start: Some(1_000_000_000),
            end: Some(1_700_000_000),
            after_id: Some("a".into()),
            before_id: Some("b".into()),
            ids: vec!["1".into(), "2".into()],
            rsm: SetRequest {
                max: Some(5),
                after: Some("z".into()),
                ..SetRequest::default()
            },
            flip_page: true,
        };
        assert_eq!(Query::try_from(&Element::from(&q)), Ok(q));
        let empty = Query::default();
        assert_eq!(
            Element::from(&empty).to_client_string(),
            "<query xmlns='urn:xmpp:mam:2'/>"
        );
        assert_eq!(Query::try_from(&Element::from(&empty)), Ok(empty));
    }

    #[test]
    fn rejects_invalid_queries() {
        let cases = [
            (
                "<query xmlns='urn:xmpp:mam:1'/>".to_owned(),
                QueryError::NotAQuery,
            ),
            (
                "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='with'><value>a@b</value></field></x></query>"
                    .to_owned(),
                QueryError::BadForm("FORM_TYPE must be urn:xmpp:mam:2".into()),
            ),
            (
                form("<field var='include-groupchat'><value>true</value></field>"),
                QueryError::UnknownField("include-groupchat".into()),
            ),
            (
                form("<field var='with'><value>a@@b</value></field>"),
                QueryError::BadJid("a@@b".into()),
            ),
            (
                form("<field var='start'><value>yesterday</value></field>"),
                QueryError::BadDate("start"),
            ),
            (
                form("<field var='end'><value>2010-07-07</value></field>"),
                QueryError::BadDate("end"),
            ),
            (
                "<query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'>\
                 <max>many</max></set></query>"
                    .to_owned(),
                QueryError::Rsm(RsmError::NotANumber("max")),
            ),
            (
                form("<field var='ids'/><field var='ids'/>"),
                QueryError::BadForm("field 'ids' appears twice".into()),
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(Query::try_from(&parse(&xml)), Err(want), "{xml}");
        }
    }

    #[test]
    fn the_offered_form_lists_every_field() {
        let form = query_form();
        assert_eq!(form.ty, "form");
        assert_eq!(form.form_type(), Some(NS));
        let vars: Vec<&str> = form.fields.iter().map(|f| f.var.as_str()).collect();
        assert_eq!(
            vars,
            [
                "FORM_TYPE",
                "with",
                "start",
                "end",
                "before-id",
                "after-id",
                "ids"
            ]
        );
        // What the server offers, it accepts (filled in by a client).
        let mut submitted = form.clone();
        submitted.ty = "submit".into();
        for f in submitted.fields.iter_mut().skip(1) {
            f.values = vec![match f.var.as_str() {
                "with" => "a@b".into(),
                "start" | "end" => "2020-01-01T00:00:00Z".into(),
                _ => "x".into(),
            }];
        }
        let q = Element::new("query", NS).with_child(Element::from(&submitted));
        assert!(Query::try_from(&q).is_ok());
        let s = Element::from(&form).to_client_string();
        assert!(!s.contains("required"), "{s}");
        assert!(
            s.contains(
                "<validate xmlns='http://jabber.org/protocol/xdata-validate' \
                 datatype='xs:string'><open/></validate>"
            ),
            "{s}"
        );
    }

    #[test]
    fn result_and_fin_serialize() {
        let m = Element::new("message", crate::ns::CLIENT).with_attr("to", "a@b");
        let r = result(Some("q"), "id1", "2020-01-01T00:00:00Z", m);
        assert_eq!(
            r.to_client_string(),
            "<result xmlns='urn:xmpp:mam:2' queryid='q' id='id1'>\
             <forwarded xmlns='urn:xmpp:forward:0'>\
             <delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:00Z'/>\
             <message xmlns='jabber:client' to='a@b'/></forwarded></result>"
        );
        let fin = Fin {
            complete: true,
            set: SetResult {
                first: Some("a".into()),
                first_index: None,
                last: Some("b".into()),
                count: Some(2),
            },
        };
        let e = Element::from(&fin);
        assert_eq!(
            e.to_client_string(),
            "<fin xmlns='urn:xmpp:mam:2' complete='true'>\
             <set xmlns='http://jabber.org/protocol/rsm'><first>a</first><last>b</last>\
             <count>2</count></set></fin>"
        );
        assert_eq!(Fin::try_from(&e), Ok(fin));
        let open = Fin::default();
        assert_eq!(Element::from(&open).attr("complete"), None);
        assert_eq!(Fin::try_from(&Element::from(&open)), Ok(open));
    }

    #[test]
    fn metadata_serializes() {
        assert_eq!(
            Element::from(&Metadata::default()).to_client_string(),
            "<metadata xmlns='urn:xmpp:mam:2'/>"
        );
        let m = Metadata {
            start: Some(("a".into(), 0)),
            end: Some(("z".into(), 86_400)),
        };
        assert_eq!(
            Element::from(&m).to_client_string(),
            "<metadata xmlns='urn:xmpp:mam:2'>\
             <start id='a' timestamp='1970-01-01T00:00:00Z'/>\
             <end id='z' timestamp='1970-01-02T00:00:00Z'/></metadata>"
        );
    }

    #[test]
    fn prefs_parse_normalize_and_round_trip() {
        let p = Prefs::try_from(&parse(
            "<prefs xmlns='urn:xmpp:mam:2' default='roster'>\
             <always><jid>Romeo@Montague.lit</jid><jid>romeo@montague.lit</jid></always>\
             <never><jid>montague.lit/Tybalt</jid></never></prefs>",
        ))
        .unwrap();
        assert_eq!(p.default, DefaultMode::Roster);
        assert_eq!(p.always, vec!["romeo@montague.lit"]);
        assert_eq!(p.never, vec!["montague.lit/Tybalt"]);
        assert_eq!(Prefs::try_from(&Element::from(&p)), Ok(p));
        let d = Prefs::default();
        assert_eq!(
            Element::from(&d).to_client_string(),
            "<prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never/></prefs>"
        );
    }

    #[test]
    fn rejects_invalid_prefs() {
        let cases = [
            ("<prefs xmlns='urn:xmpp:mam:1' default='always'/>", PrefsError::NotPrefs),
            ("<prefs xmlns='urn:xmpp:mam:2'/>", PrefsError::BadDefault),
            (
                "<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>",
                PrefsError::BadDefault,
            ),
            (
                "<prefs xmlns='urn:xmpp:mam:2' default='never'><never><jid>@x</jid></never></prefs>",
                PrefsError::BadJid("@x".into()),
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(Prefs::try_from(&parse(xml)), Err(want), "{xml}");
        }
    }
}
