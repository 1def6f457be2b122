//! Reads `template.yaml` (AWS SAM) so that tests can hold it against the code: the table against
//! [`store::schema::TABLE`], the routes and environment variables against the functions, and the queue
//! and IAM settings against the rules of the deployment.
//!
//! CloudFormation's short-form intrinsic functions (`!Ref X`, `!GetAtt X.Arn`, `!Sub "..."`) are YAML
//! tags; the parser keeps them as [`Value::Tagged`], and [`Intrinsic`] reads them back.

use std::path::{Path, PathBuf};

pub use serde_norway::Value;
use store::schema::{KeyDef, TableDef};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("could not read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_norway::Error,
    },
    #[error("{0} has no Resources mapping")]
    NoResources(PathBuf),
}

/// The repository's root (this crate lives in `tests/deploy`).
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    root: Value,
}

/// One resource of the template.
#[derive(Debug, Clone, Copy)]
pub struct Resource<'a> {
    pub id: &'a str,
    value: &'a Value,
}

/// A short-form intrinsic function.
#[derive(Debug, Clone, PartialEq)]
pub enum Intrinsic<'a> {
    /// `!Ref Name`.
    Ref(&'a str),
    /// `!GetAtt Resource.Attribute`.
    GetAtt(&'a str),
    /// `!Sub "text with ${Names}"` (the one-argument form).
    Sub(&'a str),
    /// Any other tag (`!If`, `!Not`, ...) with its argument.
    Other(String, &'a Value),
}

/// Reads `value` as an intrinsic function, if it is one.
pub fn intrinsic(value: &Value) -> Option<Intrinsic<'_>> {
    let Value::Tagged(tagged) = value else {
        return None;
    };
    let name = tagged.tag.to_string();
    let name = name.trim_start_matches('!');
    let text = tagged.value.as_str();
    Some(match (name, text) {
        ("Ref", Some(t)) => Intrinsic::Ref(t),
        ("GetAtt", Some(t)) => Intrinsic::GetAtt(t),
        ("Sub", Some(t)) => Intrinsic::Sub(t),
        _ => Intrinsic::Other(name.to_owned(), &tagged.value),
    })
}

/// The value at `path` of nested mappings.
pub fn at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(*key))
}

/// A value that may be a single item or a list of items (IAM's `Action` and `Resource`).
pub fn one_or_many(value: &Value) -> Vec<&Value> {
    match value {
        Value::Sequence(items) => items.iter().collect(),
        other => vec![other],
    }
}

impl Template {
    pub fn parse(text: &str, path: &Path) -> Result<Self, TemplateError> {
        let root: Value = serde_norway::from_str(text).map_err(|source| TemplateError::Parse {
            path: path.to_owned(),
            source,
        })?;
        if !root.get("Resources").is_some_and(Value::is_mapping) {
            return Err(TemplateError::NoResources(path.to_owned()));
        }
        Ok(Self { root })
    }

    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The repository's `template.yaml`.
    pub fn repo() -> Result<Self, TemplateError> {
        Self::load(&repo_root().join("template.yaml"))
    }

    pub fn root(&self) -> &Value {
        &self.root
    }

    pub fn root_mut(&mut self) -> &mut Value {
        &mut self.root
    }

    pub fn resources(&self) -> impl Iterator<Item = Resource<'_>> {
        self.root
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(id, value)| {
                Some(Resource {
                    id: id.as_str()?,
                    value,
                })
            })
    }

    pub fn resource(&self, id: &str) -> Option<Resource<'_>> {
        self.resources().find(|r| r.id == id)
    }

    pub fn resources_of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = Resource<'a>> {
        self.resources().filter(move |r| r.kind() == Some(kind))
    }

    /// A setting of a parameter (`["LogLevel", "AllowedValues"]`).
    pub fn parameter(&self, path: &[&str]) -> Option<&Value> {
        at(self.root.get("Parameters")?, path)
    }

    /// A parameter's default value, as text.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        scalar_text(at(&self.root, &["Parameters", name, "Default"])?)
    }

    /// A function setting from `Globals.Function`, for functions that do not set it themselves.
    pub fn function_global(&self, path: &[&str]) -> Option<&Value> {
        at(at(&self.root, &["Globals", "Function"])?, path)
    }

    /// A function's setting, or the global one.
    pub fn function_setting<'a>(
        &'a self,
        function: Resource<'a>,
        path: &[&str],
    ) -> Option<&'a Value> {
        function
            .property(path)
            .or_else(|| self.function_global(path))
    }

    /// A function's environment: the global variables overlaid with its own.
    pub fn function_environment<'a>(&'a self, function: Resource<'a>) -> Vec<(&'a str, &'a Value)> {
        let mut vars: Vec<(&str, &Value)> = Vec::new();
        let layers = [
            self.function_global(&["Environment", "Variables"]),
            function.property(&["Environment", "Variables"]),
        ];
        for layer in layers.into_iter().flatten() {
            for (name, value) in layer.as_mapping().into_iter().flat_map(|m| m.iter()) {
                let Some(name) = name.as_str() else { continue };
                vars.retain(|(n, _)| *n != name);
                vars.push((name, value));
            }
        }
        vars
    }

    /// A number that is written in the template or is the default of the parameter it refers to.
    pub fn number(&self, value: &Value) -> Option<f64> {
        match intrinsic(value) {
            Some(Intrinsic::Ref(name)) => self.parameter_default(name)?.parse().ok(),
            Some(_) => None,
            None => scalar_text(value)?.parse().ok(),
        }
    }
}

/// A scalar as text (YAML may read `"300"` as a string and `300` as a number).
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl<'a> Resource<'a> {
    pub fn kind(&self) -> Option<&'a str> {
        self.value.get("Type").and_then(Value::as_str)
    }

    pub fn value(&self) -> &'a Value {
        self.value
    }

    pub fn property(&self, path: &[&str]) -> Option<&'a Value> {
        at(self.value.get("Properties")?, path)
    }

    pub fn metadata(&self, path: &[&str]) -> Option<&'a Value> {
        at(self.value.get("Metadata")?, path)
    }
}

/// One statement of an inline IAM policy.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    pub policy: &'a str,
    pub sid: Option<&'a str>,
    pub effect: &'a str,
    pub actions: Vec<&'a str>,
    pub resources: Vec<&'a Value>,
}

/// The statements of an `AWS::IAM::Role`'s inline policies.
pub fn role_statements<'a>(role: Resource<'a>) -> Vec<Statement<'a>> {
    let mut out = Vec::new();
    let policies = role.property(&["Policies"]).and_then(Value::as_sequence);
    for policy in policies.into_iter().flatten() {
        let name = policy
            .get("PolicyName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let statements = at(policy, &["PolicyDocument", "Statement"]).map(one_or_many);
        for statement in statements.into_iter().flatten() {
            out.push(Statement {
                policy: name,
                sid: statement.get("Sid").and_then(Value::as_str),
                effect: statement
                    .get("Effect")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
                actions: statement
                    .get("Action")
                    .map(one_or_many)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(Value::as_str)
                    .collect(),
                resources: statement
                    .get("Resource")
                    .map(one_or_many)
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// Every action a role allows.
pub fn allowed_actions<'a>(role: Resource<'a>) -> Vec<&'a str> {
    role_statements(role)
        .into_iter()
        .filter(|s| s.effect == "Allow")
        .flat_map(|s| s.actions)
        .collect()
}

/// The differences between the template's `AWS::DynamoDB::Table` properties and a table definition in
/// code. Empty when they agree on everything the code defines: keys, attribute types, indexes and their
/// projections, capacity mode, TTL and the stream's view (and the template declares nothing key-related that
/// the code lacks).
pub fn table_mismatches(properties: &Value, def: &TableDef) -> Vec<String> {
    let mut problems = Vec::new();
    let text = |path: &[&str]| at(properties, path).and_then(scalar_text);

    let billing = text(&["BillingMode"]);
    let want_billing = if def.on_demand {
        "PAY_PER_REQUEST"
    } else {
        "PROVISIONED"
    };
    // PROVISIONED is CloudFormation's default when BillingMode is absent.
    let billing = billing.unwrap_or_else(|| "PROVISIONED".into());
    if billing != want_billing {
        problems.push(format!(
            "BillingMode is {billing}, the code wants {want_billing}"
        ));
    }

    let mut declared: Vec<(String, String)> = at(properties, &["AttributeDefinitions"])
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a.get("AttributeName")
                    .and_then(scalar_text)
                    .unwrap_or_default(),
                a.get("AttributeType")
                    .and_then(scalar_text)
                    .unwrap_or_default(),
            )
        })
        .collect();
    declared.sort();
    let mut wanted: Vec<(String, String)> = def
        .key_attributes()
        .into_iter()
        .map(|name| (name.to_owned(), "S".to_owned()))
        .collect();
    wanted.sort();
    if declared != wanted {
        problems.push(format!(
            "AttributeDefinitions are {declared:?}, the code's key attributes are {wanted:?}"
        ));
    }

    key_mismatch(
        "the table",
        at(properties, &["KeySchema"]),
        def.key,
        &mut problems,
    );

    let indexes: Vec<&Value> = at(properties, &["GlobalSecondaryIndexes"])
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let mut names: Vec<String> = indexes
        .iter()
        .filter_map(|i| i.get("IndexName").and_then(scalar_text))
        .collect();
    names.sort();
    let mut wanted_names: Vec<String> = def.indexes.iter().map(|i| i.name.to_owned()).collect();
    wanted_names.sort();
    if names != wanted_names {
        problems.push(format!(
            "GlobalSecondaryIndexes are {names:?}, the code defines {wanted_names:?}"
        ));
    }
    for index in def.indexes {
        let Some(declared) = indexes
            .iter()
            .find(|i| i.get("IndexName").and_then(Value::as_str) == Some(index.name))
        else {
            continue;
        };
        let what = format!("index {}", index.name);
        key_mismatch(&what, declared.get("KeySchema"), index.key, &mut problems);
        let projection = at(declared, &["Projection", "ProjectionType"]).and_then(scalar_text);
        let want = if index.projection_all {
            "ALL"
        } else {
            "KEYS_ONLY"
        };
        if projection.as_deref() != Some(want) {
            problems.push(format!(
                "{what} projects {projection:?}, the code wants {want}"
            ));
        }
        if def.on_demand && declared.get("ProvisionedThroughput").is_some() {
            problems.push(format!(
                "{what} has ProvisionedThroughput on an on-demand table"
            ));
        }
    }
    if at(properties, &["LocalSecondaryIndexes"]).is_some() {
        problems.push("LocalSecondaryIndexes are declared; the code defines none".into());
    }

    let ttl_attr = text(&["TimeToLiveSpecification", "AttributeName"]);
    let ttl_on = at(properties, &["TimeToLiveSpecification", "Enabled"]).and_then(Value::as_bool);
    if ttl_attr.as_deref() != Some(def.ttl_attribute) || ttl_on != Some(true) {
        problems.push(format!(
            "TTL is {ttl_attr:?} (enabled: {ttl_on:?}), the code expires items by {}",
            def.ttl_attribute
        ));
    }

    // A StreamSpecification without StreamEnabled is on (CloudFormation enables it with the view type).
    let view = text(&["StreamSpecification", "StreamViewType"]);
    let enabled = at(properties, &["StreamSpecification", "StreamEnabled"])
        .and_then(Value::as_bool)
        .unwrap_or(view.is_some());
    let streams_both = enabled && view.as_deref() == Some("NEW_AND_OLD_IMAGES");
    if streams_both != def.stream_new_and_old_images {
        problems.push(format!(
            "the stream is {view:?} (enabled: {enabled}), the code {} new and old images",
            if def.stream_new_and_old_images {
                "reads"
            } else {
                "streams no"
            }
        ));
    }
    problems
}

fn key_mismatch(what: &str, schema: Option<&Value>, key: KeyDef, problems: &mut Vec<String>) {
    let declared: Vec<(String, String)> = schema
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .map(|k| {
            (
                k.get("AttributeName")
                    .and_then(scalar_text)
                    .unwrap_or_default(),
                k.get("KeyType").and_then(scalar_text).unwrap_or_default(),
            )
        })
        .collect();
    let wanted = vec![
        (key.partition.to_owned(), "HASH".to_owned()),
        (key.sort.to_owned(), "RANGE".to_owned()),
    ];
    if declared != wanted {
        problems.push(format!(
            "the key schema of {what} is {declared:?}, the code wants {wanted:?}"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_form_intrinsics_are_read_back() {
        let t = Template::parse(
            "Resources:\n  A:\n    Type: X\n    Properties:\n      R: !Ref Foo\n      G: !GetAtt T.Arn\n      S: !Sub \"${T.Arn}/index/*\"\n      I: !If [C, 1, 2]\n      P: plain\n",
            Path::new("inline"),
        )
        .unwrap();
        let a = t.resource("A").unwrap();
        let p = |k: &str| a.property(&[k]).unwrap();
        assert_eq!(intrinsic(p("R")), Some(Intrinsic::Ref("Foo")));
        assert_eq!(intrinsic(p("G")), Some(Intrinsic::GetAtt("T.Arn")));
        assert_eq!(intrinsic(p("S")), Some(Intrinsic::Sub("${T.Arn}/index/*")));
        assert!(matches!(intrinsic(p("I")), Some(Intrinsic::Other(name, _)) if name == "If"));
        assert_eq!(intrinsic(p("P")), None);
    }

    #[test]
    fn a_document_without_resources_is_refused() {
        assert!(matches!(
            Template::parse("Outputs: {}\n", Path::new("inline")),
            Err(TemplateError::NoResources(_))
        ));
    }
}
