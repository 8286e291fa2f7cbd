//! The command-line flags that turn one settings value into another: every settings type
//! serialises with its flags' names (snake_case for kebab-case), so one function serves a
//! search trial's name and a research script's printed plan alike.

use serde::Serialize;

/// The flags (`--name value`, a bare `--name` for a switch that is on) for every field in
/// which `me` differs from `base`, in the field order of the serialised form. A switch cannot
/// be typed off nor an optional setting unset, so those differences are left out: `base`
/// must be the defaults the command starts from.
pub fn between<T: Serialize>(me: &T, base: &T) -> Vec<String> {
    let (Ok(serde_json::Value::Object(me)), Ok(serde_json::Value::Object(them))) =
        (serde_json::to_value(me), serde_json::to_value(base))
    else {
        return Vec::new();
    };
    let mut flags = Vec::new();
    for (key, value) in &me {
        if them.get(key) == Some(value) {
            continue;
        }
        let flag = format!("--{}", key.replace('_', "-"));
        match value {
            serde_json::Value::Bool(true) => flags.push(flag),
            serde_json::Value::Bool(false) | serde_json::Value::Null => {}
            serde_json::Value::String(s) => {
                flags.push(flag);
                flags.push(s.clone());
            }
            other => {
                flags.push(flag);
                flags.push(other.to_string());
            }
        }
    }
    flags
}
