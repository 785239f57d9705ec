//! Personalize ARNs: which kind of resource one names, and the region it lives in (where the
//! call must go, which may differ from the function's).

/// A Personalize campaign or recommender ARN; which one decides the request field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalizeArn {
    pub kind: TargetKind,
    pub arn: String,
    pub region: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Campaign,
    Recommender,
}

/// The resource types an ARN in the configuration may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArnKind {
    Campaign,
    Recommender,
    Filter,
}

impl PersonalizeArn {
    /// A campaign or recommender ARN; `Err` says why `arn` is not one.
    pub fn parse(arn: &str) -> Result<PersonalizeArn, &'static str> {
        let (kind, region) = parse_arn(arn)?;
        let kind = match kind {
            ArnKind::Campaign => TargetKind::Campaign,
            ArnKind::Recommender => TargetKind::Recommender,
            ArnKind::Filter => {
                return Err("a filter ARN; expected a campaign or recommender ARN");
            }
        };
        Ok(PersonalizeArn {
            kind,
            arn: arn.to_owned(),
            region,
        })
    }
}

/// `arn:PARTITION:personalize:REGION:ACCOUNT:TYPE/NAME` → its type and region; `Err` says why
/// `value` is not one.
pub fn parse_arn(value: &str) -> Result<(ArnKind, String), &'static str> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = parts[..] else {
        return Err("not an ARN (arn:aws:personalize:REGION:ACCOUNT:TYPE/NAME)");
    };
    if prefix != "arn" || partition.is_empty() || service != "personalize" {
        return Err("not an Amazon Personalize ARN");
    }
    if region.is_empty() || account.is_empty() {
        return Err("the ARN lacks a region or account");
    }
    let kind = match resource.split_once('/') {
        Some(("campaign", name)) if !name.is_empty() => ArnKind::Campaign,
        Some(("recommender", name)) if !name.is_empty() => ArnKind::Recommender,
        Some(("filter", name)) if !name.is_empty() => ArnKind::Filter,
        _ => return Err("resource must be campaign/NAME, recommender/NAME or filter/NAME"),
    };
    Ok((kind, region.to_owned()))
}
