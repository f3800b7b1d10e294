//! XEP-0004 Data Forms as a typed view: the `<x xmlns='jabber:x:data'/>` forms that carry
//! pubsub node configuration and publish-options (XEP-0060 §16.4, XEP-0223) and extend
//! service discovery results (XEP-0128, hashed into XEP-0115 `ver` strings).

use crate::xml::Element;
use std::fmt;

/// The data forms namespace.
pub const NS: &str = "jabber:x:data";

/// The `type` of a form (XEP-0004 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormType {
    Form,
    Submit,
    Cancel,
    Result,
}

impl FormType {
    pub fn name(self) -> &'static str {
        match self {
            FormType::Form => "form",
            FormType::Submit => "submit",
            FormType::Cancel => "cancel",
            FormType::Result => "result",
        }
    }

    fn parse(s: &str) -> Option<FormType> {
        Some(match s {
            "form" => FormType::Form,
            "submit" => FormType::Submit,
            "cancel" => FormType::Cancel,
            "result" => FormType::Result,
            _ => return None,
        })
    }
}

/// One `<field/>`: its `var`, `type`, `label`, values and (in a form) the options offered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Field {
    pub var: String,
    /// `None` when the form did not say (XEP-0004 §3.3: text-single is assumed).
    pub ty: Option<String>,
    pub label: Option<String>,
    pub values: Vec<String>,
    pub options: Vec<String>,
}

impl Field {
    /// A field `var` of type `ty` with one value.
    pub fn new(var: &str, ty: &str, value: impl Into<String>) -> Field {
        Field {
            var: var.to_owned(),
            ty: Some(ty.to_owned()),
            values: vec![value.into()],
            ..Field::default()
        }
    }

    /// Builder: sets the label.
    pub fn with_label(mut self, label: &str) -> Field {
        self.label = Some(label.to_owned());
        self
    }

    /// Builder: sets the options of a list field.
    pub fn with_options(mut self, options: &[&str]) -> Field {
        self.options = options.iter().map(|o| (*o).to_owned()).collect();
        self
    }

    /// The first value, if any.
    pub fn value(&self) -> Option<&str> {
        self.values.first().map(String::as_str)
    }
}

/// A data form: its type and fields in order. Instructions, titles and the multi-item
/// `<reported/>`/`<item/>` parts of results are not kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataForm {
    pub ty: FormType,
    pub fields: Vec<Field>,
}

/// Why an element is not a valid data form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormError {
    /// Not `<x xmlns='jabber:x:data'/>`.
    NotAForm,
    /// A missing or unknown `type` attribute.
    BadType,
    /// A field other than `fixed` without a `var` (XEP-0004 §3.2).
    MissingVar,
    /// Two fields with the same `var` (XEP-0004 §3.2: unique in a form).
    Duplicate(String),
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::NotAForm => f.write_str("not a data form"),
            FormError::BadType => {
                f.write_str("a form needs a type of form, submit, cancel or result")
            }
            FormError::MissingVar => f.write_str("a field without a var"),
            FormError::Duplicate(v) => write!(f, "the field '{v}' appears twice"),
        }
    }
}

impl std::error::Error for FormError {}

/// The name of the hidden field that names a form's purpose (XEP-0068).
pub const FORM_TYPE: &str = "FORM_TYPE";

impl DataForm {
    /// A form of type `ty` whose first field is the hidden `FORM_TYPE` with `form_type`.
    pub fn new(ty: FormType, form_type: &str) -> DataForm {
        DataForm {
            ty,
            fields: vec![Field::new(FORM_TYPE, "hidden", form_type)],
        }
    }

    /// The value of the `FORM_TYPE` field, if the form has one.
    pub fn form_type(&self) -> Option<&str> {
        self.field(FORM_TYPE).and_then(Field::value)
    }

    /// The field `var`.
    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var == var)
    }

    /// The first value of field `var`.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.field(var).and_then(Field::value)
    }

    /// Appends a field.
    pub fn push(&mut self, field: Field) {
        self.fields.push(field);
    }

    /// The fields other than `FORM_TYPE`.
    pub fn data_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| f.var != FORM_TYPE)
    }
}

/// A boolean field's value (XEP-0004 §3.3: `0`, `1`, `false`, `true`).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

impl TryFrom<&Element> for DataForm {
    type Error = FormError;

    fn try_from(e: &Element) -> Result<DataForm, FormError> {
        if !e.is("x", NS) {
            return Err(FormError::NotAForm);
        }
        let ty = e
            .attr("type")
            .and_then(FormType::parse)
            .ok_or(FormError::BadType)?;
        let mut fields: Vec<Field> = Vec::new();
        for f in e.elements().filter(|c| c.is("field", NS)) {
            let ty = f.attr("type").map(str::to_owned);
            let Some(var) = f.attr("var") else {
                if ty.as_deref() == Some("fixed") {
                    continue;
                }
                return Err(FormError::MissingVar);
            };
            if fields.iter().any(|x| x.var == var) {
                return Err(FormError::Duplicate(var.to_owned()));
            }
            fields.push(Field {
                var: var.to_owned(),
                ty,
                label: f.attr("label").map(str::to_owned),
                values: f
                    .elements()
                    .filter(|v| v.is("value", NS))
                    .map(Element::text)
                    .collect(),
                options: f
                    .elements()
                    .filter(|o| o.is("option", NS))
                    .filter_map(|o| o.child("value", NS).map(Element::text))
                    .collect(),
            });
        }
        Ok(DataForm { ty, fields })
    }
}

impl From<&DataForm> for Element {
    fn from(form: &DataForm) -> Element {
        let mut x = Element::new("x", NS).with_attr("type", form.ty.name());
        for f in &form.fields {
            let mut e = Element::new("field", NS).with_attr("var", f.var.clone());
            if let Some(t) = &f.ty {
                e.set_attr("type", t.clone());
            }
            if let Some(l) = &f.label {
                e.set_attr("label", l.clone());
            }
            for o in &f.options {
                e.push(
                    Element::new("option", NS)
                        .with_child(Element::new("value", NS).with_text(o.clone())),
                );
            }
            for v in &f.values {
                e.push(Element::new("value", NS).with_text(v.clone()));
            }
            x.push(e);
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
    fn parse_a_submitted_form() {
        let form = DataForm::try_from(&parse(
            "<x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'>\
             <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='pubsub#access_model'><value>open</value></field>\
             <field type='fixed'><value>ignored</value></field>\
             <field var='multi' type='list-multi'><value>a</value><value>b</value></field>\
             <field var='empty'/></x>",
        ))
        .unwrap();
        assert_eq!(form.ty, FormType::Submit);
        assert_eq!(
            form.form_type(),
            Some("http://jabber.org/protocol/pubsub#publish-options")
        );
        assert_eq!(form.value("pubsub#access_model"), Some("open"));
        assert_eq!(form.field("multi").unwrap().values, ["a", "b"]);
        assert_eq!(form.value("empty"), None);
        assert_eq!(form.data_fields().count(), 3);
    }

    #[test]
    fn serialize_round_trips() {
        let mut form = DataForm::new(FormType::Form, "urn:example:form");
        form.push(
            Field::new("color", "list-single", "red")
                .with_label("Colour")
                .with_options(&["red", "blue"]),
        );
        form.push(Field::new("on", "boolean", "1"));
        let e = Element::from(&form);
        assert_eq!(
            e.to_client_string(),
            "<x xmlns='jabber:x:data' type='form'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:example:form</value></field>\
             <field var='color' type='list-single' label='Colour'>\
             <option><value>red</value></option><option><value>blue</value></option>\
             <value>red</value></field>\
             <field var='on' type='boolean'><value>1</value></field></x>"
        );
        let back = DataForm::try_from(&parse(&e.to_client_string())).unwrap();
        assert_eq!(back, form);
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool(" 0 "), Some(false));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn invalid_forms() {
        for (xml, err) in [
            ("<x xmlns='jabber:x:oob' type='form'/>", FormError::NotAForm),
            ("<x xmlns='jabber:x:data'/>", FormError::BadType),
            (
                "<x xmlns='jabber:x:data' type='nonsense'/>",
                FormError::BadType,
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field/></x>",
                FormError::MissingVar,
            ),
            (
                "<x xmlns='jabber:x:data' type='submit'><field var='a'/><field var='a'/></x>",
                FormError::Duplicate("a".into()),
            ),
        ] {
            assert_eq!(DataForm::try_from(&parse(xml)), Err(err), "{xml}");
        }
    }
}
