//! API tokens: who may call the API, and what they may reach.

use serde::{Deserialize, Serialize};

use crate::names::NameError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, System Settings included.
    Admin,
    /// The projects listed on the token, and nothing of System Settings.
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// What a member token may do in one of its projects. Admins may do everything everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProjectAccess {
    /// Browse, download, list versions, and `read` credentials.
    Read,
    /// Everything `read` may, and everything that writes: uploads, deletes, moves, restores,
    /// reconciles, `read-write` credentials.
    ReadWrite,
}

impl ProjectAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectAccess::Read => "read",
            ProjectAccess::ReadWrite => "read-write",
        }
    }

    pub fn parse(s: &str) -> Option<ProjectAccess> {
        match s {
            "read" => Some(ProjectAccess::Read),
            "read-write" => Some(ProjectAccess::ReadWrite),
            _ => None,
        }
    }

    /// Whether this access covers `needed`: `read-write` covers `read`.
    pub fn covers(self, needed: ProjectAccess) -> bool {
        self >= needed
    }
}

/// A token's label: 1 to 128 characters without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(s: &str) -> Result<TokenName, NameError> {
        let chars = s.chars().count();
        if !(1..=128).contains(&chars) || s.trim().is_empty() {
            return Err(NameError::new("a token name is 1 to 128 characters, not all white space"));
        }
        if s.chars().any(char::is_control) {
            return Err(NameError::new("a token name holds no control characters"));
        }
        Ok(TokenName(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_write_covers_read_and_not_the_other_way_round() {
        use ProjectAccess::{Read, ReadWrite};
        assert!(ReadWrite.covers(Read) && ReadWrite.covers(ReadWrite) && Read.covers(Read));
        assert!(!Read.covers(ReadWrite));
        for access in [Read, ReadWrite] {
            assert_eq!(ProjectAccess::parse(access.as_str()), Some(access));
            assert_eq!(serde_json::to_string(&access).ok(), Some(format!("\"{}\"", access.as_str())));
        }
        assert_eq!(ProjectAccess::parse("write"), None);
    }

    #[test]
    fn roles_and_names() {
        assert_eq!(Role::parse("admin"), Some(Role::Admin));
        assert_eq!(Role::parse(Role::Member.as_str()), Some(Role::Member));
        assert_eq!(Role::parse("root"), None);
        assert!(TokenName::parse("ci pipeline").is_ok());
        assert!(TokenName::parse("").is_err());
        assert!(TokenName::parse("   ").is_err());
        assert!(TokenName::parse("a\nb").is_err());
        assert!(TokenName::parse(&"x".repeat(129)).is_err());
    }
}
