//! `app.json`, the app manifest Heroku (and Dokku) read: what wharf uses of it, checked.
//!
//! wharf reads `env` (config vars set on the first deploy: a `value`, a `generator: "secret"`,
//! or `required` ones the app must have), `formation` (quantity and size per process type on
//! the first deploy), `scripts.postdeploy` (run once after the first deploy) and
//! `healthchecks` (Dokku's shape: per process type, a list; the first `web` entry with a `path`
//! is the check a web instance must pass, each attempt within its `timeout`, before it gets
//! traffic). Other keys (`name`, `description`, `addons`, `buildpacks`, …) are kept
//! in the file and ignored. A key wharf reads with a value of the wrong shape is an error that
//! names the key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::ConfigKey;
use crate::formation::{DynoSize, MAX_QUANTITY};
use crate::name::ProcessType;

/// What wharf uses of an `app.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppJson {
    /// Config vars for the first deploy, by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvVar>,
    /// Instances per process type on the first deploy.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub formation: BTreeMap<String, Formation>,
    /// A command run once, as a one-off, after the first deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postdeploy: Option<String>,
    /// The HTTP check a web instance must pass before it gets traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_healthcheck: Option<HealthCheck>,
}

/// One entry of `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Heroku's default: a variable is required unless it says `"required": false`.
    pub required: bool,
    /// `generator: "secret"`: a random value made on the first deploy.
    #[serde(default)]
    pub secret: bool,
}

/// One entry of `formation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Formation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// A size [`DynoSize::parse`] reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// A web health check: `GET path` must answer 2xx or 3xx within `timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub path: String,
    /// Seconds one attempt may take.
    pub timeout_secs: u64,
}

impl HealthCheck {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// The longest health-check timeout accepted, in seconds.
const MAX_TIMEOUT_SECS: u64 = 300;

/// `app.json` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app.json: {0}")]
pub struct AppJsonError(pub String);

fn err(text: impl Into<String>) -> AppJsonError {
    AppJsonError(text.into())
}

impl AppJson {
    /// Reads an `app.json` file's text.
    pub fn parse(text: &str) -> Result<AppJson, AppJsonError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| err(format!("it is not valid JSON ({e}): check the syntax")))?;
        let top = doc
            .as_object()
            .ok_or_else(|| err("the file must hold one JSON object (`{ … }`)"))?;
        let mut out = AppJson::default();

        if let Some(env) = top.get("env") {
            let env = env
                .as_object()
                .ok_or_else(|| err("`env` must be an object of config vars by name"))?;
            for (key, spec) in env {
                ConfigKey::parse(key).map_err(|e| err(format!("`env.{key}`: {e}")))?;
                out.env.insert(key.clone(), env_var(key, spec)?);
            }
        }
        if let Some(formation) = top.get("formation") {
            let formation = formation
                .as_object()
                .ok_or_else(|| err("`formation` must be an object of process types"))?;
            for (kind, spec) in formation {
                ProcessType::parse(kind).map_err(|e| err(format!("`formation.{kind}`: {e}")))?;
                out.formation
                    .insert(kind.clone(), formation_entry(kind, spec)?);
            }
        }
        if let Some(scripts) = top.get("scripts") {
            let scripts = scripts.as_object().ok_or_else(|| {
                err("`scripts` must be an object such as {\"postdeploy\": \"…\"}")
            })?;
            match scripts.get("postdeploy") {
                None => {}
                Some(Value::String(command)) if !command.trim().is_empty() => {
                    out.postdeploy = Some(command.clone());
                }
                Some(Value::Object(o)) if o.get("command").is_some_and(Value::is_string) => {
                    out.postdeploy = o["command"].as_str().map(str::to_owned);
                }
                Some(_) => {
                    return Err(err(
                        "`scripts.postdeploy` must be a command (a non-empty string)",
                    ))
                }
            }
        }
        if let Some(checks) = top.get("healthchecks") {
            let checks = checks.as_object().ok_or_else(|| {
                err("`healthchecks` must be an object of process types, each a list of checks")
            })?;
            if let Some(web) = checks.get("web") {
                out.web_healthcheck = web_check(web)?;
            }
        }
        Ok(out)
    }
}

fn env_var(key: &str, spec: &Value) -> Result<EnvVar, AppJsonError> {
    // Heroku's shorthand: "KEY": "value".
    if let Value::String(value) = spec {
        return Ok(EnvVar {
            description: None,
            value: Some(value.clone()),
            required: true,
            secret: false,
        });
    }
    let spec = spec.as_object().ok_or_else(|| {
        err(format!(
            "`env.{key}` must be a string (its value) or an object with `value`, `description`, \
             `required` or `generator`"
        ))
    })?;
    let text = |field: &str| -> Result<Option<String>, AppJsonError> {
        match spec.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            // Heroku accepts numbers and booleans as values and sets their text.
            Some(v @ (Value::Number(_) | Value::Bool(_))) if field == "value" => {
                Ok(Some(v.to_string()))
            }
            Some(_) => Err(err(format!("`env.{key}.{field}` must be a string"))),
        }
    };
    let required = match spec.get("required") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(err(format!("`env.{key}.required` must be true or false"))),
    };
    let secret = match spec.get("generator") {
        None => false,
        Some(Value::String(g)) if g == "secret" => true,
        Some(other) => {
            return Err(err(format!(
                "`env.{key}.generator` is {other}; the one generator is \"secret\""
            )))
        }
    };
    Ok(EnvVar {
        description: text("description")?,
        value: text("value")?,
        required,
        secret,
    })
}

fn formation_entry(kind: &str, spec: &Value) -> Result<Formation, AppJsonError> {
    let spec = spec.as_object().ok_or_else(|| {
        err(format!(
            "`formation.{kind}` must be an object such as {{\"quantity\": 1, \"size\": \"standard-1x\"}}"
        ))
    })?;
    let quantity = match spec.get("quantity") {
        None => None,
        Some(v) => {
            let n = v.as_u64().filter(|n| *n <= u64::from(MAX_QUANTITY)).ok_or_else(|| {
                err(format!(
                    "`formation.{kind}.quantity` must be a whole number from 0 to {MAX_QUANTITY} (it is {v})"
                ))
            })?;
            Some(n as u32)
        }
    };
    let size = match spec.get("size") {
        None => None,
        Some(Value::String(s)) => {
            DynoSize::parse(s).map_err(|e| err(format!("`formation.{kind}.size`: {e}")))?;
            Some(s.clone())
        }
        Some(v) => {
            return Err(err(format!(
                "`formation.{kind}.size` must be a string such as \"standard-1x\" (it is {v})"
            )))
        }
    };
    Ok(Formation { quantity, size })
}

fn web_check(web: &Value) -> Result<Option<HealthCheck>, AppJsonError> {
    let list = web.as_array().ok_or_else(|| {
        err("`healthchecks.web` must be a list of checks such as [{\"path\": \"/health\"}]")
    })?;
    for (i, check) in list.iter().enumerate() {
        let at = format!("healthchecks.web[{i}]");
        let check = check
            .as_object()
            .ok_or_else(|| err(format!("`{at}` must be an object with a `path`")))?;
        let Some(path) = check.get("path") else {
            continue; // a check of another kind (a command, say): not one wharf runs
        };
        let path = path
            .as_str()
            .filter(|p| p.starts_with('/') && !p.contains(char::is_whitespace))
            .ok_or_else(|| {
                err(format!(
                    "`{at}.path` must be a URL path such as \"/health\""
                ))
            })?;
        let number = |field: &str, default: u64, max: u64| -> Result<u64, AppJsonError> {
            match check.get(field) {
                None => Ok(default),
                Some(v) => v.as_u64().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                    err(format!(
                        "`{at}.{field}` must be a whole number from 1 to {max} (it is {v})"
                    ))
                }),
            }
        };
        return Ok(Some(HealthCheck {
            path: path.to_owned(),
            timeout_secs: number("timeout", 5, MAX_TIMEOUT_SECS)?,
        }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_wharf_reads_is_read_and_the_rest_kept_aside() {
        let app = AppJson::parse(
            r#"{
              "name": "demo", "addons": ["heroku-postgresql"], "buildpacks": [],
              "env": {
                "GREETING": "hello",
                "SECRET_KEY": {"description": "signing", "generator": "secret"},
                "API_TOKEN": {"description": "from the vendor"},
                "DEBUG": {"value": false, "required": false}
              },
              "formation": {"web": {"quantity": 2, "size": "standard-2x"}, "worker": {"quantity": 1}},
              "scripts": {"postdeploy": "python seed.py", "test": "pytest"},
              "healthchecks": {"web": [{"type": "startup", "path": "/health", "timeout": 7}]}
            }"#,
        )
        .unwrap();
        assert_eq!(app.env["GREETING"].value.as_deref(), Some("hello"));
        assert!(app.env["SECRET_KEY"].secret && app.env["SECRET_KEY"].required);
        assert!(app.env["API_TOKEN"].required && app.env["API_TOKEN"].value.is_none());
        assert_eq!(app.env["DEBUG"].value.as_deref(), Some("false"));
        assert!(!app.env["DEBUG"].required);
        assert_eq!(app.formation["web"].quantity, Some(2));
        assert_eq!(app.formation["web"].size.as_deref(), Some("standard-2x"));
        assert_eq!(app.formation["worker"].size, None);
        assert_eq!(app.postdeploy.as_deref(), Some("python seed.py"));
        let check = app.web_healthcheck.unwrap();
        assert_eq!((check.path.as_str(), check.timeout_secs), ("/health", 7));
        assert_eq!(AppJson::parse("{}").unwrap(), AppJson::default());
    }

    #[test]
    fn bad_keys_are_named() {
        let cases = [
            ("[1]", "one JSON object"),
            ("{", "not valid JSON"),
            (r#"{"env": {"1BAD": "x"}}"#, "`env.1BAD`"),
            (
                r#"{"env": {"A": {"generator": "uuid"}}}"#,
                "`env.A.generator`",
            ),
            (r#"{"env": {"A": {"required": "yes"}}}"#, "`env.A.required`"),
            (
                r#"{"formation": {"web": {"quantity": "two"}}}"#,
                "`formation.web.quantity`",
            ),
            (
                r#"{"formation": {"web": {"quantity": 1000}}}"#,
                "`formation.web.quantity`",
            ),
            (
                r#"{"formation": {"web": {"size": "huge"}}}"#,
                "`formation.web.size`",
            ),
            (r#"{"scripts": {"postdeploy": 3}}"#, "`scripts.postdeploy`"),
            (
                r#"{"healthchecks": {"web": [{"path": "health"}]}}"#,
                "`healthchecks.web[0].path`",
            ),
            (
                r#"{"healthchecks": {"web": [{"path": "/h", "timeout": 0}]}}"#,
                "`healthchecks.web[0].timeout`",
            ),
        ];
        for (text, names) in cases {
            let e = AppJson::parse(text).unwrap_err().to_string();
            assert!(
                e.starts_with("app.json: ") && e.contains(names),
                "{text}: {e}"
            );
        }
    }
}
