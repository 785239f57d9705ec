//! Local-mode filters, written in Amazon Personalize's filter expression syntax so the same
//! names and expressions work in both modes. The supported subset, one clause each:
//!
//! ```text
//! EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase", "return")
//! INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY)
//! EXCLUDE ItemID WHERE Items.BRAND IN ("acme", $BRAND)
//! ```
//!
//! As in Personalize: `$PARAM` values come from the request (`filter_PARAM=`); an INCLUDE filter
//! needs every parameter, an EXCLUDE filter skips a clause whose parameter is missing; an item field
//! holding several values separated by `|` matches when any of them does.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFilter {
    pub action: Action,
    pub dataset: Dataset,
    pub values: Vec<Operand>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Include,
    Exclude,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dataset {
    /// `Items.FIELD`: a column of the items file, matched case-insensitively.
    Items(String),
    /// `Interactions.EVENT_TYPE`: the requesting user's own interactions.
    InteractionEventType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operand {
    Literal(String),
    Param(String),
}

/// A filter resolved against one request's `filter_` values. `None` from `resolve` means the
/// clause is skipped (an EXCLUDE whose parameter was not given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    pub action: Action,
    pub dataset: &'a Dataset,
    pub values: Vec<String>,
}

impl LocalFilter {
    pub fn parse(expression: &str) -> Result<LocalFilter, String> {
        let tokens = tokenize(expression)?;
        let mut tokens = Cursor(tokens.iter().map(String::as_str).collect(), 0);

        let action = match tokens.next() {
            Some(t) if t.eq_ignore_ascii_case("INCLUDE") => Action::Include,
            Some(t) if t.eq_ignore_ascii_case("EXCLUDE") => Action::Exclude,
            _ => return Err("must start with INCLUDE or EXCLUDE".into()),
        };
        tokens.expect("ItemID")?;
        tokens.expect("WHERE")?;
        let field = tokens
            .next()
            .ok_or("expected Items.FIELD or Interactions.EVENT_TYPE")?;
        let dataset = match field.split_once('.') {
            Some((d, f)) if d.eq_ignore_ascii_case("Items") && !f.is_empty() => {
                Dataset::Items(f.to_owned())
            }
            Some((d, f))
                if d.eq_ignore_ascii_case("Interactions")
                    && f.eq_ignore_ascii_case("EVENT_TYPE") =>
            {
                if action == Action::Include {
                    return Err("INCLUDE on Interactions is not supported in local mode, where items a user \
                                interacted with are never recommended"
                        .into());
                }
                Dataset::InteractionEventType
            }
            _ => {
                return Err(format!(
                    "{field:?}: only Items.FIELD and Interactions.EVENT_TYPE are supported"
                ));
            }
        };
        tokens.expect("IN")?;
        tokens.expect("(")?;
        let mut values = Vec::new();
        loop {
            let token = tokens.next().ok_or("a value list is not closed")?;
            values.push(if let Some(param) = token.strip_prefix('$') {
                Operand::Param(param.to_owned())
            } else if let Some(literal) = token.strip_prefix('"') {
                Operand::Literal(literal.to_owned())
            } else {
                return Err(format!("{token:?}: values are \"quoted\" or $PARAMETERS"));
            });
            match tokens.next() {
                Some(",") => continue,
                Some(")") => break,
                Some(t) => return Err(format!("expected , or ) after a value, found {t:?}")),
                None => return Err("a value list is not closed".into()),
            }
        }
        if let Some(extra) = tokens.next() {
            return Err(format!(
                "only one clause is supported in local mode; found {extra:?} after it"
            ));
        }
        Ok(LocalFilter {
            action,
            dataset,
            values,
        })
    }

    /// Fills in `$PARAM`s from the request. `Err` names a missing parameter of an INCLUDE filter.
    pub fn resolve(
        &self,
        filter_values: &[(String, Vec<String>)],
    ) -> Result<Option<Resolved<'_>>, String> {
        let mut values = Vec::new();
        for operand in &self.values {
            match operand {
                Operand::Literal(v) => values.push(v.clone()),
                Operand::Param(p) => match filter_values.iter().find(|(name, _)| name == p) {
                    Some((_, given)) => values.extend(given.iter().cloned()),
                    None if self.action == Action::Exclude => return Ok(None),
                    None => {
                        return Err(format!("the filter needs a value for ${p} (filter_{p}=…)"));
                    }
                },
            }
        }
        Ok(Some(Resolved {
            action: self.action,
            dataset: &self.dataset,
            values,
        }))
    }
}

struct Cursor<'a>(Vec<&'a str>, usize);

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let token = self.0.get(self.1).copied();
        self.1 += 1;
        token
    }

    /// The next token must be `want` (keywords match in any case, as in Personalize).
    fn expect(&mut self, want: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t.eq_ignore_ascii_case(want) => Ok(()),
            Some(t) => Err(format!("expected {want}, found {t:?}")),
            None => Err(format!("expected {want}, found the end")),
        }
    }
}

/// Words, `"quoted literals"` (kept with their opening quote as a marker), `(`, `)` and `,`.
fn tokenize(expression: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = expression.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' => {
                tokens.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut literal = String::from('"');
                loop {
                    match chars.next() {
                        Some('\\') => literal.extend(chars.next()),
                        Some('"') => break,
                        Some(c) => literal.push(c),
                        None => return Err("a quoted value is not closed".into()),
                    }
                }
                tokens.push(literal);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "(),\"".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(word);
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_forms() {
        assert_eq!(
            LocalFilter::parse(
                r#"EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase", "return")"#
            ),
            Ok(LocalFilter {
                action: Action::Exclude,
                dataset: Dataset::InteractionEventType,
                values: vec![
                    Operand::Literal("purchase".into()),
                    Operand::Literal("return".into())
                ],
            })
        );
        assert_eq!(
            LocalFilter::parse("include itemid where Items.CATEGORY in ($CATEGORY)"),
            Ok(LocalFilter {
                action: Action::Include,
                dataset: Dataset::Items("CATEGORY".into()),
                values: vec![Operand::Param("CATEGORY".into())],
            })
        );
    }

    #[test]
    fn rejects_what_it_cannot_honour_with_a_reason() {
        for (expression, reason) in [
            ("ITEMS.CATEGORY = 'x'", "INCLUDE or EXCLUDE"),
            (
                r#"INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("view")"#,
                "not supported in local mode",
            ),
            (
                r#"EXCLUDE ItemID WHERE Users.AGE IN ("3")"#,
                "only Items.FIELD",
            ),
            (r#"EXCLUDE ItemID WHERE Items.X IN ("a""#, "not closed"),
            (r#"EXCLUDE ItemID WHERE Items.X IN ("a",)"#, "values are"),
            (r#"EXCLUDE ItemID WHERE Items.X IN (a)"#, "quoted"),
            (r#"EXCLUDE ItemID WHERE Items.X IN ("a)"#, "not closed"),
            (r#"EXCLUDE ItemID WHERE Items.X = "a""#, "expected IN"),
            (
                r#"EXCLUDE ItemID WHERE Items.X IN ("a") AND Items.Y IN ("b")"#,
                "only one clause",
            ),
        ] {
            let err = LocalFilter::parse(expression).expect_err(expression);
            assert!(err.contains(reason), "{expression}: {err}");
        }
    }

    #[test]
    fn parameters_resolve_like_personalize() {
        let include =
            LocalFilter::parse("INCLUDE ItemID WHERE Items.CATEGORY IN ($CATEGORY, \"sale\")")
                .unwrap();
        let given = vec![(
            "CATEGORY".to_owned(),
            vec!["shoes".to_owned(), "hats".to_owned()],
        )];
        assert_eq!(
            include.resolve(&given).unwrap().unwrap().values,
            ["shoes", "hats", "sale"]
        );
        assert!(
            include
                .resolve(&[])
                .unwrap_err()
                .contains("filter_CATEGORY")
        );

        let exclude = LocalFilter::parse("EXCLUDE ItemID WHERE Items.BRAND IN ($BRAND)").unwrap();
        assert_eq!(
            exclude.resolve(&[]),
            Ok(None),
            "an EXCLUDE clause without its value is skipped"
        );
    }
}
