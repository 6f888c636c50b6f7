//! Who asks: the role of the caller's token, and for a member the projects it names.
//!
//! Visibility is a rule of the services, not of an interface: a member sees only the projects
//! its token names, and of the others not even that they exist (they are "not found"). Roles
//! are checked here too, so that an interface that forgets to check gets a refusal rather than
//! an admin's rights.

use byos_catalog::Token;
use byos_domain::{Problem, Role};
use uuid::Uuid;

use crate::ServiceError;

/// The authenticated caller of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    token: Uuid,
    role: Role,
    projects: Vec<Uuid>,
}

impl Caller {
    /// A caller with the token `token` of `role`; `projects` are those a member reaches.
    pub fn new(token: Uuid, role: Role, projects: Vec<Uuid>) -> Caller {
        Caller { token, role, projects }
    }

    /// The caller a stored token makes.
    pub fn of_token(token: &Token) -> Caller {
        Caller::new(token.id, token.role, token.projects.clone())
    }

    /// The id of the caller's token, for the log.
    pub fn token(&self) -> Uuid {
        self.token
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may see the project `id`: admins see every project, members those
    /// their token names.
    pub fn sees_project(&self, id: Uuid) -> bool {
        self.is_admin() || self.projects.contains(&id)
    }

    /// Refuses a caller without the admin role; `what` (a plural, such as "System Settings")
    /// says what needs it.
    pub fn require_admin(&self, what: &str) -> Result<(), ServiceError> {
        if self.is_admin() {
            return Ok(());
        }
        Err(Problem::access_forbidden(&format!("{what} need a token with the admin role")).into())
    }
}

/// What System Settings' operations say to a member.
pub(crate) const SYSTEM_SETTINGS: &str = "System Settings";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_see_the_projects_their_token_names() {
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let member = Caller::new(Uuid::new_v4(), Role::Member, vec![mine]);
        assert!(member.sees_project(mine));
        assert!(!member.sees_project(theirs));
        let admin = Caller::new(Uuid::new_v4(), Role::Admin, Vec::new());
        assert!(admin.sees_project(mine) && admin.sees_project(theirs));
    }

    #[test]
    fn only_admins_pass_the_admin_check() {
        let member = Caller::new(Uuid::new_v4(), Role::Member, Vec::new());
        let refused = member.require_admin(SYSTEM_SETTINGS).err().and_then(|e| e.problem().cloned());
        assert_eq!(
            refused.map(|p| p.message().to_owned()).as_deref(),
            Some("Access forbidden: System Settings need a token with the admin role")
        );
        assert!(Caller::new(Uuid::new_v4(), Role::Admin, Vec::new()).require_admin(SYSTEM_SETTINGS).is_ok());
    }
}
