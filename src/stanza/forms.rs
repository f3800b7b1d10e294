//! XEP-0004 Data Forms, the part roost needs: a form's type and its fields with their
//! values, parsed from a submitted `<x xmlns='jabber:x:data'/>`, and built for the forms the
//! server offers (XEP-0313's query form). XEP-0068 `FORM_TYPE` names what a form is for.

use crate::xml::Element;
use std::fmt;

/// The data forms namespace.
pub const NS: &str = "jabber:x:data";
/// The hidden field that names what a form is for (XEP-0068).
pub const FORM_TYPE: &str = "FORM_TYPE";

/// A boolean field's value (XEP-0004 §3.3: `0`, `1`, `false`, `true`).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// One `<field/>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub var: String,
    /// The `type` attribute (`hidden`, `text-single`, `jid-single`, `list-multi`, …).
    pub ty: Option<String>,
    pub values: Vec<String>,
    /// Other children kept as they are (XEP-0122 `<validate/>`, `<option/>`).
    pub extra: Vec<Element>,
}

impl Field {
    /// A field with a type and no value.
    pub fn new(var: &str, ty: &str) -> Field {
        Field {
            var: var.to_owned(),
            ty: Some(ty.to_owned()),
            values: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Builder: adds a value.
    pub fn with_value(mut self, value: impl Into<String>) -> Field {
        self.values.push(value.into());
        self
    }

    /// Builder: the `<option/>`s of a list field.
    pub fn with_options(mut self, options: &[&str]) -> Field {
        for o in options {
            self.extra.push(
                Element::new("option", NS).with_child(Element::new("value", NS).with_text(*o)),
            );
        }
        self
    }

    /// The first value, if it is not empty: an empty `<value/>` (or none) means "not given".
    pub fn value(&self) -> Option<&str> {
        self.values
            .first()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A `<x xmlns='jabber:x:data' type='…'/>` with its fields, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataForm {
    /// `form`, `submit`, `cancel` or `result`.
    pub ty: String,
    pub fields: Vec<Field>,
}

/// Why an element is not a usable data form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormError {
    /// Not `<x xmlns='jabber:x:data'/>`.
    NotAForm,
    /// XEP-0004 §3.1: the `type` attribute is required.
    MissingType,
    /// A field without `var` (only `fixed` fields may lack it, and roost reads none).
    FieldWithoutVar,
    /// The same `var` twice (XEP-0004 §3.2: unique within a form).
    DuplicateField(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::NotAForm => f.write_str("not a jabber:x:data form"),
            FormError::MissingType => f.write_str("the form has no type"),
            FormError::FieldWithoutVar => f.write_str("a field has no var"),
            FormError::DuplicateField(v) => write!(f, "field '{v}' appears twice"),
        }
    }
}

impl std::error::Error for FormError {}

impl DataForm {
    /// A form of type `ty` whose hidden `FORM_TYPE` is `form_type`.
    pub fn with_form_type(ty: &str, form_type: &str) -> DataForm {
        let mut hidden = Field::new("FORM_TYPE", "hidden");
        hidden.values.push(form_type.to_owned());
        DataForm {
            ty: ty.to_owned(),
            fields: vec![hidden],
        }
    }

    /// The value of the hidden `FORM_TYPE` field (XEP-0068).
    pub fn form_type(&self) -> Option<&str> {
        self.field("FORM_TYPE").and_then(Field::value)
    }

    /// The field named `var`.
    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var == var)
    }

    /// The first (non-empty) value of the field named `var`.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.field(var).and_then(Field::value)
    }

    /// The fields other than `FORM_TYPE`.
    pub fn data_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.var != FORM_TYPE)
    }
}

impl TryFrom<&Element> for DataForm {
    type Error = FormError;

    fn try_from(e: &Element) -> Result<DataForm, FormError> {
        if !e.is("x", NS) {
            return Err(FormError::NotAForm);
        }
        let ty = e.attr("type").ok_or(FormError::MissingType)?.to_owned();
        let mut fields: Vec<Field> = Vec::new();
        for f in e.elements().filter(|c| c.is("field", NS)) {
            // A `fixed` field is text for a human and may have no var (XEP-0004 §3.2).
            if f.attr("var").is_none() && f.attr("type") == Some("fixed") {
                continue;
            }
            let var = f.attr("var").ok_or(FormError::FieldWithoutVar)?;
            if fields.iter().any(|x| x.var == var) {
                return Err(FormError::DuplicateField(var.to_owned()));
            }
            let mut field = Field {
                var: var.to_owned(),
                ty: f.attr("type").map(str::to_owned),
                values: Vec::new(),
                extra: Vec::new(),
            };
            for c in f.elements() {
                if c.is("value", NS) {
                    field.values.push(c.text());
                } else if !c.is("desc", NS) && !c.is("required", NS) {
                    field.extra.push(c.clone());
                }
            }
            fields.push(field);
        }
        Ok(DataForm { ty, fields })
    }
}

impl From<&DataForm> for Element {
    fn from(form: &DataForm) -> Element {
        let mut x = Element::new("x", NS).with_attr("type", form.ty.clone());
        for f in &form.fields {
            let mut field = Element::new("field", NS).with_attr("var", f.var.clone());
            if let Some(t) = &f.ty {
                field.set_attr("type", t.clone());
            }
            for v in &f.values {
                field.push(Element::new("value", NS).with_text(v.clone()));
            }
            for e in &f.extra {
                field.push(e.clone());
            }
            x.push(field);
        }
        x
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
    fn parses_a_submitted_form() {
        let x = parse(
            "<x xmlns='jabber:x:data' type='submit'>\
               <field var='FORM_TYPE' type='hidden'><value>urn:example</value></field>\
               <field var='with'><value>a@b</value></field>\
               <field var='ids'><value>1</value><value>2</value></field>\
               <field var='empty'><value/></field>\
             </x>",
        );
        let form = DataForm::try_from(&x).unwrap();
        assert_eq!(form.ty, "submit");
        assert_eq!(form.form_type(), Some("urn:example"));
        assert_eq!(form.field("with").and_then(Field::value), Some("a@b"));
        assert_eq!(form.field("ids").unwrap().values, vec!["1", "2"]);
        assert_eq!(form.field("empty").and_then(Field::value), None);
        assert!(form.field("missing").is_none());
    }

    #[test]
    fn serializes_and_parses_back() {
        let mut form = DataForm::with_form_type("form", "urn:example");
        form.fields.push(Field::new("with", "jid-single"));
        let mut ids = Field::new("ids", "list-multi");
        ids.extra.push(Element::new(
            "validate",
            "http://jabber.org/protocol/xdata-validate",
        ));
        form.fields.push(ids);
        let e = Element::from(&form);
        assert_eq!(
            e.to_client_string(),
            "<x xmlns='jabber:x:data' type='form'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:example</value></field>\
             <field var='with' type='jid-single'/>\
             <field var='ids' type='list-multi'>\
             <validate xmlns='http://jabber.org/protocol/xdata-validate'/></field></x>"
        );
        assert_eq!(DataForm::try_from(&e), Ok(form));
    }

    #[test]
    fn builders_fixed_fields_and_booleans() {
        let mut form = DataForm::with_form_type("form", "urn:example");
        form.fields.push(
            Field::new("color", "list-single")
                .with_value("red")
                .with_options(&["red", "blue"]),
        );
        let e = Element::from(&form);
        assert_eq!(
            e.to_client_string(),
            "<x xmlns='jabber:x:data' type='form'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:example</value></field>\
             <field var='color' type='list-single'><value>red</value>\
             <option><value>red</value></option><option><value>blue</value></option>\
             </field></x>"
        );
        let back = DataForm::try_from(&e).unwrap();
        assert_eq!(back.value("color"), Some("red"));
        assert_eq!(
            back.data_fields()
                .map(|f| f.var.as_str())
                .collect::<Vec<_>>(),
            ["color"]
        );
        let with_fixed = parse(
            "<x xmlns='jabber:x:data' type='result'><field type='fixed'><value>Hi</value>\
             </field><field var='a'><value>1</value></field></x>",
        );
        assert_eq!(DataForm::try_from(&with_fixed).unwrap().fields.len(), 1);
        for (s, b) in [
            ("1", Some(true)),
            ("true", Some(true)),
            (" 0 ", Some(false)),
        ] {
            assert_eq!(parse_bool(s), b, "{s}");
        }
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn rejects_invalid_forms() {
        let cases = [
            ("<x xmlns='urn:other' type='submit'/>", FormError::NotAForm),
            ("<x xmlns='jabber:x:data'/>", FormError::MissingType),
            (
                "<x xmlns='jabber:x:data' type='submit'><field><value>v</value></field></x>",
                FormError::FieldWithoutVar,
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>",
                FormError::DuplicateField("a".into()),
            ),
            (
                "<x xmlns='jabber:x:data' type='form'><field type='hidden'/></x>",
                FormError::FieldWithoutVar,
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(DataForm::try_from(&parse(xml)), Err(want), "{xml}");
        }
    }
}
