//! Who asks: the role of the caller's token, and for a member the projects it names, each with
//! its access (`read` or `read-write`).
//!
//! Visibility is a rule of the services, not of an interface: a member sees only the projects
//! its token names, and of the others not even that they exist (they are "not found"). Roles
//! and access are checked here too, so that an interface that forgets to check gets a refusal
//! rather than an admin's rights: every operation on a project's data takes a [`ProjectScope`],
//! which only [`Caller::project`] makes, after the check.

use std::fmt;
use std::marker::PhantomData;

use byos_catalog::{ProjectGrant, Token};
use byos_domain::{Problem, ProjectAccess, Role};
use uuid::Uuid;

use crate::ServiceError;

/// The authenticated caller of an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    token: Uuid,
    /// The token's name, as the audit log shows the caller.
    name: String,
    role: Role,
    projects: Vec<ProjectGrant>,
}

impl Caller {
    /// A caller with the token `token`, named `name`, of `role`; `projects` are those a member
    /// reaches.
    pub fn new(token: Uuid, name: &str, role: Role, projects: Vec<ProjectGrant>) -> Caller {
        Caller { token, name: name.to_owned(), role, projects }
    }

    /// The caller a stored token makes.
    pub fn of_token(token: &Token) -> Caller {
        Caller::new(token.id, token.name.as_str(), token.role, token.projects.clone())
    }

    /// The id of the caller's token, for the log.
    pub fn token(&self) -> Uuid {
        self.token
    }

    /// The name of the caller's token.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// What the caller may do in the project `id`: admins everything, members what their token
    /// grants, `None` for a project the caller may not see.
    pub fn access(&self, id: Uuid) -> Option<ProjectAccess> {
        if self.is_admin() {
            return Some(ProjectAccess::ReadWrite);
        }
        self.projects.iter().find(|grant| grant.id == id).map(|grant| grant.access)
    }

    /// Whether the caller may see the project `id`.
    pub fn sees_project(&self, id: Uuid) -> bool {
        self.access(id).is_some()
    }

    /// The caller acting on project `id` with access `A`: refused as "not found" when the
    /// caller may not see the project (so it learns nothing of it), and as forbidden when it
    /// may see it but its access does not cover `A`.
    pub fn project<A: Access>(&self, id: Uuid) -> Result<ProjectScope<A>, ServiceError> {
        match self.access(id) {
            None => Err(Problem::not_found(PROJECT, &id.to_string()).into()),
            Some(access) if !access.covers(A::NEEDED) => Err(Problem::access_forbidden(&format!(
                "this token has {} access to project {id}; {} needs {} access",
                access.as_str(),
                A::WHAT,
                A::NEEDED.as_str()
            ))
            .into()),
            Some(_) => Ok(ProjectScope { caller: self.clone(), project: id, _access: PhantomData }),
        }
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

/// What a "not found" project is called.
pub(crate) const PROJECT: &str = "Project";

/// An access level as a type, so that a service's signature says what it needs.
pub trait Access: sealed::Sealed + Send + Sync + 'static {
    /// The level the operations of this type need.
    const NEEDED: ProjectAccess;
    /// What they are, as a refusal says it.
    const WHAT: &'static str;
}

/// Reading a project: browsing, downloads, versions, `read` credentials.
#[derive(Debug, Clone, Copy)]
pub enum Read {}

/// Changing a project's data: uploads, deletes, moves, restores, reconciles, `read-write`
/// credentials.
#[derive(Debug, Clone, Copy)]
pub enum ReadWrite {}

impl Access for Read {
    const NEEDED: ProjectAccess = ProjectAccess::Read;
    const WHAT: &'static str = "reading its data";
}

impl Access for ReadWrite {
    const NEEDED: ProjectAccess = ProjectAccess::ReadWrite;
    const WHAT: &'static str = "changing its data";
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Read {}
    impl Sealed for super::ReadWrite {}
}

/// Proof that a caller may act on one project with access `A` (at least): made only by
/// [`Caller::project`]. Operations on a project take one, so none can forget the check.
pub struct ProjectScope<A: Access> {
    caller: Caller,
    project: Uuid,
    _access: PhantomData<fn() -> A>,
}

impl<A: Access> ProjectScope<A> {
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The project's id.
    pub fn project(&self) -> Uuid {
        self.project
    }

    /// What the caller may do in the project, which may be more than `A`.
    pub fn access(&self) -> ProjectAccess {
        self.caller.access(self.project).unwrap_or(A::NEEDED)
    }
}

impl ProjectScope<ReadWrite> {
    /// The same caller, for an operation that only reads.
    pub fn reading(&self) -> ProjectScope<Read> {
        ProjectScope { caller: self.caller.clone(), project: self.project, _access: PhantomData }
    }
}

impl<A: Access> Clone for ProjectScope<A> {
    fn clone(&self) -> Self {
        ProjectScope { caller: self.caller.clone(), project: self.project, _access: PhantomData }
    }
}

impl<A: Access> fmt::Debug for ProjectScope<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectScope")
            .field("token", &self.caller.token)
            .field("project", &self.project)
            .field("needed", &A::NEEDED)
            .finish()
    }
}

/// What System Settings' operations say to a member.
pub(crate) const SYSTEM_SETTINGS: &str = "System Settings";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::code;

    fn member(grants: &[(Uuid, ProjectAccess)]) -> Caller {
        let grants = grants.iter().map(|&(id, access)| ProjectGrant { id, access }).collect();
        Caller::new(Uuid::new_v4(), "test", Role::Member, grants)
    }

    #[test]
    fn members_see_the_projects_their_token_names() {
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let member = member(&[(mine, ProjectAccess::Read)]);
        assert!(member.sees_project(mine));
        assert!(!member.sees_project(theirs));
        let admin = Caller::new(Uuid::new_v4(), "test", Role::Admin, Vec::new());
        assert!(admin.sees_project(mine) && admin.sees_project(theirs));
    }

    #[test]
    fn a_project_scope_needs_the_access_of_the_operation() {
        let (read, write, theirs) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let member = member(&[(read, ProjectAccess::Read), (write, ProjectAccess::ReadWrite)]);
        assert!(member.project::<Read>(read).is_ok());
        assert_eq!(code(member.project::<ReadWrite>(read)), "access-forbidden");
        let scope = member.project::<ReadWrite>(write).unwrap();
        assert_eq!((scope.project(), scope.reading().access()), (write, ProjectAccess::ReadWrite));
        assert_eq!(member.project::<Read>(write).map(|s| s.access()).ok(), Some(ProjectAccess::ReadWrite));
        // A project the token does not name does not exist, whatever the access asked for.
        assert_eq!(code(member.project::<Read>(theirs)), "not-found");
        assert_eq!(code(member.project::<ReadWrite>(theirs)), "not-found");
        let admin = Caller::new(Uuid::new_v4(), "test", Role::Admin, Vec::new());
        assert!(admin.project::<ReadWrite>(theirs).is_ok());
    }

    #[test]
    fn a_refusal_says_what_the_token_has_and_what_is_needed() {
        let project = Uuid::new_v4();
        let refused = member(&[(project, ProjectAccess::Read)]).project::<ReadWrite>(project);
        let message = refused.err().and_then(|e| e.problem().map(|p| p.message().to_owned()));
        assert_eq!(
            message,
            Some(format!(
                "Access forbidden: this token has read access to project {project}; changing its data needs \
                 read-write access"
            ))
        );
    }

    #[test]
    fn only_admins_pass_the_admin_check() {
        let member = Caller::new(Uuid::new_v4(), "test", Role::Member, Vec::new());
        let refused = member.require_admin(SYSTEM_SETTINGS).err().and_then(|e| e.problem().cloned());
        assert_eq!(
            refused.map(|p| p.message().to_owned()).as_deref(),
            Some("Access forbidden: System Settings need a token with the admin role")
        );
        assert!(Caller::new(Uuid::new_v4(), "test", Role::Admin, Vec::new()).require_admin(SYSTEM_SETTINGS).is_ok());
    }
}
