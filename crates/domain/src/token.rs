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
