//! Platform regions: each maps to one AWS region and to the platform's cross-account copy role
//! there. The built-in table is ICA's, so `byos aws` serves ICA customers as they are; a
//! deployment replaces it in its configuration.

use serde::{Deserialize, Serialize};

use crate::names::{RoleArn, is_aws_region_id};

/// One platform region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Region {
    /// Short code, such as `EU`.
    pub code: String,
    /// Display name, such as `Germany`.
    pub name: String,
    /// The AWS region id, such as `eu-central-1`.
    pub aws_region: String,
    /// The role the platform assumes to copy data across accounts in this region.
    pub cross_account_role_arn: String,
    /// A limitation of this region, shown next to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a configured region table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionTableError {
    #[error("the region table is empty")]
    Empty,
    #[error("region {code}: {aws_region:?} is not an AWS region id")]
    BadAwsRegion { code: String, aws_region: String },
    #[error("region {code}: cross-account role: {reason}")]
    BadRoleArn { code: String, reason: String },
    #[error("AWS region {aws_region} appears twice in the region table")]
    Duplicate { aws_region: String },
}

/// The regions a deployment serves, in display order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTable {
    regions: Vec<Region>,
}

impl RegionTable {
    /// ICA's table, from its S3 connection guide.
    pub fn builtin() -> RegionTable {
        const ROWS: [(&str, &str, &str, &str); 12] = [
            ("AU", "Australia", "ap-southeast-2", "aps2"),
            ("CA", "Canada", "ca-central-1", "cac1"),
            ("EU", "Germany", "eu-central-1", "euc1"),
            ("IN", "India", "ap-south-1", "aps3"),
            ("ID", "Indonesia", "ap-southeast-3", "aps4"),
            ("IL", "Israel", "il-central-1", "ilc1"),
            ("JP", "Japan", "ap-northeast-1", "apn1"),
            ("SG", "Singapore", "ap-southeast-1", "aps1"),
            ("KR", "South Korea", "ap-northeast-2", "apn2"),
            ("GB", "UK", "eu-west-2", "euw2"),
            ("AE", "United Arab Emirates", "me-central-1", "mec1"),
            ("US", "United States", "us-east-1", "use1"),
        ];
        let regions = ROWS
            .iter()
            .map(|&(code, name, aws_region, role)| Region {
                code: code.to_owned(),
                name: name.to_owned(),
                aws_region: aws_region.to_owned(),
                cross_account_role_arn: format!("arn:aws:iam::079623148045:role/ica_{role}_crossacct"),
                note: (code == "KR")
                    .then(|| "BSSH is not deployed in this region, so sequencer integration is limited".to_owned()),
            })
            .collect();
        RegionTable { regions }
    }

    /// A table from configuration, checked once: AWS region ids well formed and unique, role
    /// ARNs valid.
    pub fn new(regions: Vec<Region>) -> Result<RegionTable, RegionTableError> {
        if regions.is_empty() {
            return Err(RegionTableError::Empty);
        }
        for (i, region) in regions.iter().enumerate() {
            if !is_aws_region_id(&region.aws_region) {
                return Err(RegionTableError::BadAwsRegion {
                    code: region.code.clone(),
                    aws_region: region.aws_region.clone(),
                });
            }
            if let Err(e) = RoleArn::parse(&region.cross_account_role_arn) {
                return Err(RegionTableError::BadRoleArn { code: region.code.clone(), reason: e.to_string() });
            }
            if regions[..i].iter().any(|r| r.aws_region == region.aws_region) {
                return Err(RegionTableError::Duplicate { aws_region: region.aws_region.clone() });
            }
        }
        Ok(RegionTable { regions })
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region whose AWS region id is `aws_region`.
    pub fn get(&self, aws_region: &str) -> Option<&Region> {
        self.regions.iter().find(|r| r.aws_region == aws_region)
    }

    /// The AWS region ids, comma-separated, as the catalogue's `{regions}` shows them.
    pub fn aws_region_list(&self) -> String {
        self.regions.iter().map(|r| r.aws_region.as_str()).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn builtin_table_is_icas() {
        let table = RegionTable::builtin();
        let rendered: String = table
            .regions()
            .iter()
            .map(|r| format!("{} {} {} {}\n", r.code, r.aws_region, r.cross_account_role_arn, r.name))
            .collect();
        expect![[r#"
            AU ap-southeast-2 arn:aws:iam::079623148045:role/ica_aps2_crossacct Australia
            CA ca-central-1 arn:aws:iam::079623148045:role/ica_cac1_crossacct Canada
            EU eu-central-1 arn:aws:iam::079623148045:role/ica_euc1_crossacct Germany
            IN ap-south-1 arn:aws:iam::079623148045:role/ica_aps3_crossacct India
            ID ap-southeast-3 arn:aws:iam::079623148045:role/ica_aps4_crossacct Indonesia
            IL il-central-1 arn:aws:iam::079623148045:role/ica_ilc1_crossacct Israel
            JP ap-northeast-1 arn:aws:iam::079623148045:role/ica_apn1_crossacct Japan
            SG ap-southeast-1 arn:aws:iam::079623148045:role/ica_aps1_crossacct Singapore
            KR ap-northeast-2 arn:aws:iam::079623148045:role/ica_apn2_crossacct South Korea
            GB eu-west-2 arn:aws:iam::079623148045:role/ica_euw2_crossacct UK
            AE me-central-1 arn:aws:iam::079623148045:role/ica_mec1_crossacct United Arab Emirates
            US us-east-1 arn:aws:iam::079623148045:role/ica_use1_crossacct United States
        "#]]
        .assert_eq(&rendered);
        // The built-in table passes the same checks as a configured one.
        assert_eq!(RegionTable::new(table.regions().to_vec()), Ok(table.clone()));
        assert_eq!(table.get("eu-central-1").map(|r| r.code.as_str()), Some("EU"));
        assert!(table.get("eu-west-1").is_none());
        assert!(table.get("ap-northeast-2").is_some_and(|r| r.note.is_some()));
    }

    #[test]
    fn configured_tables_are_checked() {
        let region = |aws: &str, role: &str| Region {
            code: "X".to_owned(),
            name: "X".to_owned(),
            aws_region: aws.to_owned(),
            cross_account_role_arn: role.to_owned(),
            note: None,
        };
        let role = "arn:aws:iam::123456789012:role/copy";
        assert_eq!(RegionTable::new(vec![]), Err(RegionTableError::Empty));
        assert!(matches!(RegionTable::new(vec![region("central", role)]), Err(RegionTableError::BadAwsRegion { .. })));
        assert!(matches!(
            RegionTable::new(vec![region("eu-west-1", "arn:aws:iam::1:role/x")]),
            Err(RegionTableError::BadRoleArn { .. })
        ));
        assert!(matches!(
            RegionTable::new(vec![region("eu-west-1", role), region("eu-west-1", role)]),
            Err(RegionTableError::Duplicate { .. })
        ));
        let table = RegionTable::new(vec![region("eu-west-1", role), region("us-west-2", role)]).unwrap();
        assert_eq!(table.aws_region_list(), "eu-west-1, us-west-2");
    }
}
