//! Email servers: one item per server (`SERVERS` / `SERVER#{id}`), updated under optimistic concurrency
//! on its `version`, and one Secrets Manager secret per server (`{prefix}/servers/{id}`) holding its
//! credentials as JSON.
//!
//! The item's attributes are the fields of [`EmailServer`] as JSON maps them (nested objects become
//! DynamoDB maps), so that the item reads plainly in the console and the domain type stays the single
//! description of a server.
//!
//! A server's credentials never reach the table: the item keeps only [`CredentialHints`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use domain::servers::{CredentialHint, CredentialHints, EmailServer, ServerId};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Number, Value};

use crate::error::{StoreError, classify};
use crate::schema::{PK, SK, keys};
use crate::table::{Item, PageQuery, Table, n};

const VERSION: &str = "version";

fn server_key(id: &ServerId) -> Item {
    keys::server(id).into_item()
}

/// A DynamoDB attribute as JSON: maps and lists recursively, numbers as JSON numbers (text when they do
/// not fit one), sets as lists, binary as null.
pub(crate) fn attribute_to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(text) => number_to_json(text),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::M(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), attribute_to_json(v)))
                .collect(),
        ),
        AttributeValue::L(list) => Value::Array(list.iter().map(attribute_to_json).collect()),
        AttributeValue::Ss(set) => Value::Array(set.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(set) => Value::Array(set.iter().map(|t| number_to_json(t)).collect()),
        _ => Value::Null,
    }
}

fn number_to_json(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or_else(|| Value::String(text.to_owned()), Value::Number)
}

/// JSON as a DynamoDB attribute (the inverse of [`attribute_to_json`] for what JSON can hold).
pub(crate) fn json_to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(num) => n(num),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(list) => AttributeValue::L(list.iter().map(json_to_attribute).collect()),
        Value::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                .collect(),
        ),
    }
}

/// An item's attributes as a JSON object, without the table's key and index attributes.
pub(crate) fn item_to_json(item: &Item) -> Map<String, Value> {
    item.iter()
        .filter(|(k, _)| !matches!(k.as_str(), PK | SK) && !k.starts_with("gsi"))
        .map(|(k, v)| (k.clone(), attribute_to_json(v)))
        .collect()
}

fn server_item(server: &EmailServer) -> Result<Item, StoreError> {
    let Value::Object(fields) = serde_json::to_value(server).map_err(StoreError::build)? else {
        return Err(StoreError::Corrupt("a server is not a JSON object".into()));
    };
    let mut item = server_key(&server.id);
    item.extend(
        fields
            .iter()
            .map(|(k, v)| (k.clone(), json_to_attribute(v))),
    );
    Ok(item)
}

fn server_from(item: &Item) -> Result<EmailServer, StoreError> {
    serde_json::from_value(Value::Object(item_to_json(item)))
        .map_err(|e| StoreError::Corrupt(format!("email server item: {e}")))
}

impl Table {
    /// Every configured server, in id order.
    pub async fn servers(&self) -> Result<Vec<EmailServer>, StoreError> {
        let mut servers = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .query_page(PageQuery {
                    limit: 1000,
                    cursor: cursor.as_deref(),
                    ..PageQuery::table(keys::SERVERS, keys::SERVER_PREFIX)
                })
                .await?;
            for item in &page.items {
                servers.push(server_from(item)?);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(servers),
            }
        }
    }

    /// One server, read consistently (an update is based on what this returns).
    pub async fn server(&self, id: &ServerId) -> Result<Option<EmailServer>, StoreError> {
        self.get(server_key(id), true)
            .await?
            .map(|item| server_from(&item))
            .transpose()
    }

    /// Stores a new server. Returns false if a server with its id exists.
    pub async fn create_server(&self, server: &EmailServer) -> Result<bool, StoreError> {
        self.put_new(server_item(server)?).await
    }

    /// Replaces a server if its stored version is still `based_on`. Returns false if it changed or was
    /// deleted meanwhile. The caller sets `server.version` to the new version.
    pub async fn update_server(
        &self,
        server: &EmailServer,
        based_on: u64,
    ) -> Result<bool, StoreError> {
        let result = self
            .client()
            .put_item()
            .table_name(self.name())
            .set_item(Some(server_item(server)?))
            .condition_expression("#v = :v")
            .expression_attribute_names("#v", VERSION)
            .expression_attribute_values(":v", n(based_on))
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes a server. Returns false if there was none.
    pub async fn delete_server(&self, id: &ServerId) -> Result<bool, StoreError> {
        let result = self
            .client()
            .delete_item()
            .table_name(self.name())
            .set_key(Some(server_key(id)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await
            .map_err(classify);
        match result {
            Ok(_) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A server's credentials, as kept in its secret: the Server API Token for API delivery, the SMTP
/// username and password for SMTP. Postmark's own SMTP setup uses the Server API Token as both username
/// and password, so the username is a credential too.
#[derive(Clone, Debug, Default)]
pub struct ServerCredentials {
    pub api_token: Option<SecretString>,
    pub smtp_username: Option<SecretString>,
    pub smtp_password: Option<SecretString>,
}

const API_TOKEN: &str = "api_token";
const SMTP_USERNAME: &str = "smtp_username";
const SMTP_PASSWORD: &str = "smtp_password";

impl ServerCredentials {
    /// What the server item may show of them, once stored as `secret_version`.
    pub fn hints(&self, secret_version: String) -> CredentialHints {
        let hint =
            |v: &Option<SecretString>| v.as_ref().map(|s| CredentialHint::of(s.expose_secret()));
        CredentialHints {
            secret_version: Some(secret_version),
            api_token: hint(&self.api_token),
            smtp_username: hint(&self.smtp_username),
            smtp_password: hint(&self.smtp_password),
        }
    }

    fn to_json(&self) -> String {
        let mut map = Map::new();
        for (name, value) in [
            (API_TOKEN, &self.api_token),
            (SMTP_USERNAME, &self.smtp_username),
            (SMTP_PASSWORD, &self.smtp_password),
        ] {
            if let Some(v) = value {
                map.insert(name.into(), Value::String(v.expose_secret().to_owned()));
            }
        }
        Value::Object(map).to_string()
    }

    /// Reads the secret's JSON. The error never quotes the text: it is a secret.
    fn from_json(text: &str) -> Result<Self, StoreError> {
        let corrupt =
            || StoreError::Corrupt("a server secret is not the expected JSON object".into());
        let Value::Object(mut map) = serde_json::from_str(text).map_err(|_| corrupt())? else {
            return Err(corrupt());
        };
        let mut take = |name: &str| -> Result<Option<SecretString>, StoreError> {
            match map.remove(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(SecretString::from(s))),
                Some(_) => Err(corrupt()),
            }
        };
        Ok(Self {
            api_token: take(API_TOKEN)?,
            smtp_username: take(SMTP_USERNAME)?,
            smtp_password: take(SMTP_PASSWORD)?,
        })
    }
}

/// The name of a server's secret.
pub fn secret_name(prefix: &str, id: &ServerId) -> String {
    format!("{}/servers/{id}", prefix.trim_end_matches('/'))
}

type CacheKey = (ServerId, String);

/// The servers' secrets in Secrets Manager, all under one prefix.
///
/// Every change of credentials is a new version of the server's secret, and the server's item names
/// the version it goes with ([`CredentialHints::secret_version`]). Readers fetch that version, never
/// "the current one": when two updates race, the item's conditional write decides the winner, and the
/// secret version the winner wrote is the one used, whichever write reached Secrets Manager last.
/// Versions never change, so they are cached without expiry.
#[derive(Clone, Debug)]
pub struct ServerSecrets {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
    cache: Arc<Mutex<HashMap<CacheKey, Arc<ServerCredentials>>>>,
}

fn has_code<E: ProvideErrorMetadata>(e: &E, code: &str) -> bool {
    e.code() == Some(code)
}

/// How many versions the cache keeps before it starts over (servers are few; this only bounds a
/// process that sees endless rotations).
const CACHE_LIMIT: usize = 256;

impl ServerSecrets {
    pub fn new(client: aws_sdk_secretsmanager::Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            cache: Arc::default(),
        }
    }

    pub fn name(&self, id: &ServerId) -> String {
        secret_name(&self.prefix, id)
    }

    /// Creates the secret of a new server. Returns the version to record on the server.
    pub async fn create(
        &self,
        id: &ServerId,
        credentials: &ServerCredentials,
    ) -> Result<String, StoreError> {
        let out = self
            .client
            .create_secret()
            .name(self.name(id))
            .description("Credentials of an email server (JSON)")
            .secret_string(credentials.to_json())
            .send()
            .await
            .map_err(classify)?;
        out.version_id
            .ok_or_else(|| StoreError::Corrupt("CreateSecret returned no version".into()))
    }

    /// Writes new credentials as a new version of the server's secret. Returns the version to record
    /// on the server. A secret that is gone (the server was deleted meanwhile) is
    /// [`StoreError::ConditionFailed`].
    pub async fn put(
        &self,
        id: &ServerId,
        credentials: &ServerCredentials,
    ) -> Result<String, StoreError> {
        let result = self
            .client
            .put_secret_value()
            .secret_id(self.name(id))
            .secret_string(credentials.to_json())
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| has_code(s, "ResourceNotFoundException")) =>
            {
                return Err(StoreError::ConditionFailed);
            }
            Err(e) => return Err(classify(e)),
        };
        out.version_id
            .ok_or_else(|| StoreError::Corrupt("PutSecretValue returned no version".into()))
    }

    /// The credentials of `server`: the secret version its item names, fetched once per process.
    /// `None` when the secret or that version is gone.
    pub async fn credentials(
        &self,
        server: &EmailServer,
    ) -> Result<Option<Arc<ServerCredentials>>, StoreError> {
        let version = server.credentials.secret_version.clone();
        if let Some(v) = &version
            && let Some(found) = self
                .cache
                .lock()
                .ok()
                .and_then(|c| c.get(&(server.id.clone(), v.clone())).cloned())
        {
            return Ok(Some(found));
        }
        let Some(credentials) = self.fetch(&server.id, version.as_deref()).await? else {
            return Ok(None);
        };
        let credentials = Arc::new(credentials);
        if let (Some(v), Ok(mut cache)) = (version, self.cache.lock()) {
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert((server.id.clone(), v), credentials.clone());
        }
        Ok(Some(credentials))
    }

    /// One version of a server's secret (the current one when `version` is `None`), read directly.
    pub async fn fetch(
        &self,
        id: &ServerId,
        version: Option<&str>,
    ) -> Result<Option<ServerCredentials>, StoreError> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(self.name(id))
            .set_version_id(version.map(str::to_owned))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| has_code(s, "ResourceNotFoundException")) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(classify(e)),
        };
        let text = out
            .secret_string()
            .ok_or_else(|| StoreError::Corrupt("a server secret has no string value".into()))?;
        Ok(Some(ServerCredentials::from_json(text)?))
    }

    /// Deletes a server's secret at once (no recovery window: the server is gone). A missing secret is
    /// fine.
    pub async fn delete(&self, id: &ServerId) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_secret()
            .secret_id(self.name(id))
            .force_delete_without_recovery(true)
            .send()
            .await;
        if let Ok(mut cache) = self.cache.lock() {
            cache.retain(|(server, _), _| server != id);
        }
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| has_code(s, "ResourceNotFoundException")) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_attributes_round_trip() {
        let json = serde_json::json!({
            "s": "text", "i": 42, "neg": -7, "f": 1.5, "b": true, "z": null,
            "m": {"inner": ["a", 1, false]},
        });
        let Value::Object(map) = &json else {
            unreachable!()
        };
        let item: HashMap<String, AttributeValue> = map
            .iter()
            .map(|(k, v)| (k.clone(), json_to_attribute(v)))
            .collect();
        assert_eq!(Value::Object(item_to_json(&item)), json);
        assert_eq!(
            attribute_to_json(&AttributeValue::N("1e400".into())),
            Value::String("1e400".into())
        );
    }

    #[test]
    fn credentials_round_trip_and_a_bad_secret_is_never_quoted() {
        let c = ServerCredentials {
            api_token: Some(SecretString::from("tok-123456789")),
            smtp_username: None,
            smtp_password: Some(SecretString::from("pw-abcdefgh")),
        };
        let back = ServerCredentials::from_json(&c.to_json()).unwrap();
        assert_eq!(back.api_token.unwrap().expose_secret(), "tok-123456789");
        assert!(back.smtp_username.is_none());
        let hints = c.hints("v1".into());
        assert_eq!(hints.smtp_password.unwrap().last4, "efgh");
        assert_eq!(hints.secret_version.as_deref(), Some("v1"));
        assert!(!format!("{c:?}").contains("tok-123"));
        let err = ServerCredentials::from_json("not json: hunter2-secret").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        let err = ServerCredentials::from_json(r#"{"api_token": 12345678}"#).unwrap_err();
        assert!(!err.to_string().contains("12345678"));
    }

    #[test]
    fn secret_names_sit_under_the_prefix() {
        let id = ServerId::parse("abc").unwrap();
        assert_eq!(secret_name("app/dev", &id), "app/dev/servers/abc");
        assert_eq!(secret_name("app/dev/", &id), "app/dev/servers/abc");
    }
}
