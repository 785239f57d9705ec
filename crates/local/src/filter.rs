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
//!
//! A filter may end in a condition on the requesting user's metadata (the users file), and then
//! applies only to users who meet it; for the others, and for users the file lacks, it lets every
//! item through:
//!
//! ```text
//! INCLUDE ItemID WHERE Items.CATEGORY IN ("bags") IF CurrentUser.TIER = "gold"
//! EXCLUDE ItemID WHERE Items.CATEGORY IN ("kids") IF CurrentUser.AGE >= 18 AND CurrentUser.TIER IN ("gold", "silver")
//! ```
//!
//! Tests: `IN` / `NOT IN` a list of quoted values, `=` and `!=` (as numbers when both sides are),
//! and `<`, `<=`, `>`, `>=` on numbers; the values are written in the filter, not parameters.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFilter {
    pub action: Action,
    pub dataset: Dataset,
    pub values: Vec<Operand>,
    /// `IF CurrentUser.…` tests, all of which a user must pass for the filter to apply.
    pub condition: Vec<UserTest>,
}

/// One test of `IF CurrentUser.FIELD …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTest {
    /// The users file's column, matched case-insensitively.
    pub field: String,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    In(Vec<String>),
    NotIn(Vec<String>),
    Compare(Comparison, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl UserTest {
    /// Whether a user whose `field` holds `value` (`None`: no such metadata) passes. A user
    /// without the field passes no test, as in Personalize.
    pub fn holds(&self, value: Option<&str>) -> bool {
        let Some(value) = value else {
            return false;
        };
        let number = |text: &str| text.trim().parse::<f64>().ok();
        match &self.test {
            Test::In(values) => values.iter().any(|v| v == value),
            Test::NotIn(values) => !values.iter().any(|v| v == value),
            Test::Compare(comparison, wanted) => {
                let ordering = match (number(value), number(wanted)) {
                    (Some(a), Some(b)) => a.partial_cmp(&b),
                    _ if matches!(comparison, Comparison::Equal | Comparison::NotEqual) => {
                        Some(value.cmp(wanted.as_str()))
                    }
                    _ => None,
                };
                let Some(ordering) = ordering else {
                    return false;
                };
                match comparison {
                    Comparison::Equal => ordering.is_eq(),
                    Comparison::NotEqual => ordering.is_ne(),
                    Comparison::Less => ordering.is_lt(),
                    Comparison::LessOrEqual => ordering.is_le(),
                    Comparison::Greater => ordering.is_gt(),
                    Comparison::GreaterOrEqual => ordering.is_ge(),
                }
            }
        }
    }
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
        let values = value_list(&mut tokens, |token| {
            if let Some(param) = token.strip_prefix('$') {
                Ok(Operand::Param(param.to_owned()))
            } else if let Some(literal) = token.strip_prefix('"') {
                Ok(Operand::Literal(literal.to_owned()))
            } else {
                Err(format!("{token:?}: values are \"quoted\" or $PARAMETERS"))
            }
        })?;
        let condition = match tokens.next() {
            None => Vec::new(),
            Some(t) if t.eq_ignore_ascii_case("IF") => parse_condition(&mut tokens)?,
            Some(extra) => {
                return Err(format!(
                    "only one clause (and an IF CurrentUser condition) is supported in local mode; found {extra:?} after it"
                ));
            }
        };
        Ok(LocalFilter {
            action,
            dataset,
            values,
            condition,
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

/// `CurrentUser.FIELD <test> [AND CurrentUser.FIELD <test>]…`, after `IF`.
fn parse_condition(tokens: &mut Cursor<'_>) -> Result<Vec<UserTest>, String> {
    let mut tests = Vec::new();
    loop {
        let field = tokens.next().ok_or("expected CurrentUser.FIELD after IF")?;
        let field = match field.split_once('.') {
            Some((d, f)) if d.eq_ignore_ascii_case("CurrentUser") && !f.is_empty() => f.to_owned(),
            _ => {
                return Err(format!(
                    "{field:?}: an IF condition tests CurrentUser.FIELD"
                ));
            }
        };
        let operator = tokens.next().ok_or("expected IN, NOT IN or a comparison")?;
        let test = if operator.eq_ignore_ascii_case("IN") {
            Test::In(literal_list(tokens)?)
        } else if operator.eq_ignore_ascii_case("NOT") {
            tokens.expect("IN")?;
            Test::NotIn(literal_list(tokens)?)
        } else {
            let comparison = match operator {
                "=" => Comparison::Equal,
                "!=" => Comparison::NotEqual,
                "<" => Comparison::Less,
                "<=" => Comparison::LessOrEqual,
                ">" => Comparison::Greater,
                ">=" => Comparison::GreaterOrEqual,
                other => {
                    return Err(format!(
                        "{other:?}: expected IN, NOT IN, =, !=, <, <=, > or >="
                    ));
                }
            };
            let value = tokens.next().ok_or("a comparison needs a value")?;
            let value = match value.strip_prefix('"') {
                Some(literal) => literal.to_owned(),
                None if value.parse::<f64>().is_ok() => value.to_owned(),
                None => {
                    return Err(format!(
                        "{value:?}: compare with a \"quoted\" value or a number"
                    ));
                }
            };
            if !matches!(comparison, Comparison::Equal | Comparison::NotEqual)
                && value.parse::<f64>().is_err()
            {
                return Err(format!("{value:?}: <, <=, > and >= compare numbers"));
            }
            Test::Compare(comparison, value)
        };
        tests.push(UserTest { field, test });
        match tokens.next() {
            None => return Ok(tests),
            Some(t) if t.eq_ignore_ascii_case("AND") => continue,
            Some(t) => {
                return Err(format!(
                    "expected AND or the end after a condition, found {t:?}"
                ));
            }
        }
    }
}

/// `("a", "b")`: quoted values only.
fn literal_list(tokens: &mut Cursor<'_>) -> Result<Vec<String>, String> {
    value_list(tokens, |token| match token.strip_prefix('"') {
        Some(literal) => Ok(literal.to_owned()),
        None => Err(format!(
            "{token:?}: an IF condition's values are \"quoted\""
        )),
    })
}

/// `(v, v, …)`, each value read by `value`.
fn value_list<T>(
    tokens: &mut Cursor<'_>,
    value: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    tokens.expect("(")?;
    let mut values = Vec::new();
    loop {
        let token = tokens.next().ok_or("a value list is not closed")?;
        values.push(value(token)?);
        match tokens.next() {
            Some(",") => continue,
            Some(")") => return Ok(values),
            Some(t) => return Err(format!("expected , or ) after a value, found {t:?}")),
            None => return Err("a value list is not closed".into()),
        }
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
            '=' | '!' | '<' | '>' => {
                let mut operator = String::new();
                while let Some(&c) = chars.peek() {
                    if !"=!<>".contains(c) {
                        break;
                    }
                    operator.push(c);
                    chars.next();
                }
                tokens.push(operator);
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
                    if c.is_whitespace() || "(),\"=!<>".contains(c) {
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
                condition: Vec::new(),
            })
        );
        assert_eq!(
            LocalFilter::parse("include itemid where Items.CATEGORY in ($CATEGORY)"),
            Ok(LocalFilter {
                action: Action::Include,
                dataset: Dataset::Items("CATEGORY".into()),
                values: vec![Operand::Param("CATEGORY".into())],
                condition: Vec::new(),
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
    fn current_user_conditions_parse_and_test_like_personalize() {
        let filter = LocalFilter::parse(
            r#"INCLUDE ItemID WHERE Items.CATEGORY IN ("bags") IF CurrentUser.TIER IN ("gold", "silver") AND CurrentUser.AGE>=18 AND currentuser.country != "FR""#,
        )
        .unwrap();
        let [tier, age, country] = &filter.condition[..] else {
            panic!("{:?}", filter.condition)
        };
        assert_eq!(tier.field, "TIER");
        assert!(tier.holds(Some("silver")) && !tier.holds(Some("bronze")) && !tier.holds(None));
        assert_eq!(
            age.test,
            Test::Compare(Comparison::GreaterOrEqual, "18".into())
        );
        assert!(age.holds(Some("18")) && age.holds(Some("18.5")) && !age.holds(Some("9")));
        assert!(!age.holds(Some("adult")), "not a number: no order");
        assert!(country.holds(Some("DE")) && !country.holds(Some("FR")));
        let not_in = LocalFilter::parse(
            r#"EXCLUDE ItemID WHERE Items.X IN ("a") IF CurrentUser.TIER NOT IN ("gold")"#,
        )
        .unwrap();
        assert!(
            not_in.condition[0].holds(Some("silver")) && !not_in.condition[0].holds(Some("gold"))
        );
        assert!(
            !not_in.condition[0].holds(None),
            "no metadata meets no condition"
        );

        for (expression, reason) in [
            (
                r#"EXCLUDE ItemID WHERE Items.X IN ("a") IF Items.Y = "b""#,
                "CurrentUser.FIELD",
            ),
            (
                r#"EXCLUDE ItemID WHERE Items.X IN ("a") IF CurrentUser.AGE > "old""#,
                "compare numbers",
            ),
            (
                r#"EXCLUDE ItemID WHERE Items.X IN ("a") IF CurrentUser.T IN ($T)"#,
                "quoted",
            ),
            (
                r#"EXCLUDE ItemID WHERE Items.X IN ("a") IF CurrentUser.T == "b""#,
                "expected IN",
            ),
            (
                r#"EXCLUDE ItemID WHERE Items.X IN ("a") IF CurrentUser.T = "b" OR"#,
                "AND or the end",
            ),
            (
                r#"EXCLUDE ItemID WHERE Items.X IN ("a") IF"#,
                "CurrentUser.FIELD after IF",
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
