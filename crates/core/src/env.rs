//! Settings from the environment, by one rule for every binary: an empty value is unset (a SAM
//! parameter left blank arrives as `""`), and a value that cannot be used is an error naming its
//! variable, what it holds and what is expected. The function's `Config` and the batch tools'
//! Lambda settings both read through [`Env`].

use crate::item::UrlTemplates;

/// A setting that cannot be used. The text is for whoever deploys: it names the variable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EnvError {
    #[error("{var} is required{hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
}

/// `var=value` cannot be used, because `reason`.
pub fn invalid(var: &'static str, value: &str, reason: impl Into<String>) -> EnvError {
    EnvError::Invalid {
        var,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// The variables, from the process or any lookup (tests pass a map).
pub struct Env<F> {
    lookup: F,
}

/// The process's own environment.
pub fn process() -> Env<fn(&str) -> Option<String>> {
    Env::new(|name| std::env::var(name).ok())
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn new(lookup: F) -> Self {
        Env { lookup }
    }

    /// The value of `name`; empty or blank counts as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|value| !value.trim().is_empty())
    }

    /// The value of `name`, which must be set; `hint` follows "NAME is required".
    pub fn required(&self, name: &'static str, hint: &'static str) -> Result<String, EnvError> {
        self.get(name).ok_or(EnvError::Missing { var: name, hint })
    }

    /// An integer in `min..=max`, `default` when unset.
    pub fn number(
        &self,
        name: &'static str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, EnvError> {
        Ok(self.optional_number(name, min, max)?.unwrap_or(default))
    }

    /// An integer in `min..=max`, if set.
    pub fn optional_number(
        &self,
        name: &'static str,
        min: u32,
        max: u32,
    ) -> Result<Option<u32>, EnvError> {
        let Some(text) = self.get(name) else {
            return Ok(None);
        };
        match text.trim().parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(invalid(
                name,
                &text,
                format!("expected an integer in {min}..={max}"),
            )),
        }
    }

    /// `true` or `false`, `default` when unset.
    pub fn flag(&self, name: &'static str, default: bool) -> Result<bool, EnvError> {
        match self.get(name).as_deref().map(str::trim) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(invalid(name, other, "expected true or false")),
        }
    }

    /// A value `parse` turns into a `T`, if set; its error becomes the reason.
    pub fn parsed<T>(
        &self,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, EnvError> {
        match self.get(name) {
            None => Ok(None),
            Some(text) => parse(&text).map(Some).map_err(|e| invalid(name, &text, e)),
        }
    }

    /// `ITEM_URL_TEMPLATE` and `IMAGE_URL_TEMPLATE`, each with `{id}` where the id goes.
    pub fn url_templates(&self) -> Result<UrlTemplates, EnvError> {
        let template = |name: &'static str| match self.get(name) {
            Some(t) if !t.contains("{id}") => Err(invalid(name, &t, "must contain {id}")),
            other => Ok(other),
        };
        Ok(UrlTemplates {
            url: template("ITEM_URL_TEMPLATE")?,
            image: template("IMAGE_URL_TEMPLATE")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::new(move |name| map.get(name).cloned())
    }

    #[test]
    fn empty_is_unset_and_bad_values_name_their_variable() {
        let env = env(&[("A", " "), ("N", "7"), ("BIG", "70"), ("F", "yes")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.number("A", 3, 1, 10), Ok(3));
        assert_eq!(env.number("N", 3, 1, 10), Ok(7));
        let err = env.number("BIG", 3, 1, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"BIG="70" is invalid: expected an integer in 1..=10"#
        );
        assert_eq!(
            env.flag("F", false).unwrap_err().to_string(),
            r#"F="yes" is invalid: expected true or false"#
        );
        assert_eq!(
            env.required("MISSING", " (the items table)")
                .unwrap_err()
                .to_string(),
            "MISSING is required (the items table)"
        );
        assert_eq!(
            env.parsed("N", |t| t.parse::<u8>().map_err(|e| e.to_string())),
            Ok(Some(7))
        );
    }

    #[test]
    fn url_templates_need_the_id() {
        let good = env(&[("ITEM_URL_TEMPLATE", "https://shop.example/p/{id}")]);
        assert_eq!(
            good.url_templates().unwrap().url.as_deref(),
            Some("https://shop.example/p/{id}")
        );
        let bad = env(&[("IMAGE_URL_TEMPLATE", "https://cdn.example/p.jpg")]);
        assert!(matches!(
            bad.url_templates(),
            Err(EnvError::Invalid {
                var: "IMAGE_URL_TEMPLATE",
                ..
            })
        ));
    }
}
