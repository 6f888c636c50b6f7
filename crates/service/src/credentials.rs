//! Storage credentials: the keys and roles the platform reaches buckets with.
//!
//! Secrets (secret access keys, external ids) are sealed under the master key with the
//! credential's id as context; a secret access key never leaves this module again. An
//! `aws-role` credential's external id is the server's (128 random bits, never the caller's: a
//! caller who could choose it could name another customer's), and it is shown, since the role's
//! owner must write it into the role's trust policy. Roles of the platform's own account are
//! refused: the platform's identity may be trusted by them without an external id.

use std::fmt;

use byos_catalog::{Credential, CredentialIdentity};
use byos_domain::{
    AccessKeyId, CredentialKind, ErrorCode, ExternalId, NameError, Problem, ResourceName, RoleArn, SecretAccessKey,
};
use uuid::Uuid;

use crate::caller::SYSTEM_SETTINGS;
use crate::error::{Internal, internal, store_error};
use crate::{Caller, ServiceError, Services, now, required};

const RESOURCE: &str = "Storage credential";

/// A new storage credential, as a client sends it: `aws-user` takes `accessKeyId` and
/// `secretAccessKey`; `aws-role` takes `roleArn`, and the server generates its external id.
#[derive(Default)]
pub struct CredentialRequest {
    pub name: Option<String>,
    /// `aws-user` or `aws-role`.
    pub kind: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub role_arn: Option<String>,
    /// Refused: the server makes an `aws-role` credential's external id.
    pub external_id: Option<String>,
}

/// New secret material for a credential, of the credential's own type: an `aws-user` takes a
/// new key; an `aws-role` gets a new external id (and a new role ARN when given).
#[derive(Default)]
pub struct RotationRequest {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
}

impl fmt::Debug for CredentialRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialRequest")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl fmt::Debug for RotationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotationRequest")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &self.secret_access_key.as_ref().map(|_| "<redacted>"))
            .field("role_arn", &self.role_arn)
            .field("external_id", &self.external_id.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A stored credential with what may be shown of its secret: an `aws-role`'s external id.
#[derive(Debug, Clone)]
pub struct CredentialDetails {
    pub credential: Credential,
    /// `aws-role` only.
    pub external_id: Option<ExternalId>,
}

/// The operations on storage credentials: System Settings, for admins.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    services: &'a Services,
}

impl<'a> Credentials<'a> {
    pub(crate) fn new(services: &'a Services) -> Credentials<'a> {
        Credentials { services }
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<CredentialDetails>, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        let credentials = self.services.store().credentials.list_credentials().await.map_err(internal)?;
        credentials.into_iter().map(|c| self.details(c)).collect()
    }

    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<CredentialDetails, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.details(self.stored(id).await?)
    }

    /// Checks the request, refuses roles of the platform's account, seals the secret and stores
    /// the credential.
    pub async fn create(&self, caller: &Caller, request: CredentialRequest) -> Result<CredentialDetails, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        let invalid = |m: String| ServiceError::from(Problem::invalid_request(&m));
        let name = field("name", request.name.as_deref(), ResourceName::parse).map_err(invalid)?;
        let kind_text = required("type", request.kind.as_deref()).map_err(invalid)?;
        let kind = CredentialKind::parse(kind_text)
            .ok_or_else(|| invalid(format!("type: {kind_text:?} is not aws-user or aws-role")))?;
        let material = material(
            kind,
            request.access_key_id.as_deref(),
            request.secret_access_key.as_deref(),
            request.role_arn.as_deref(),
            request.external_id.as_deref(),
        )
        .map_err(invalid)?;
        self.refuse_platform_roles(&material).await?;
        let id = Uuid::new_v4();
        let now = now();
        let (identity, sealed_secret) = self.seal(id, material);
        let credential = Credential { id, name, identity, sealed_secret, created_at: now, updated_at: now };
        self.services
            .store()
            .credentials
            .insert_credential(&credential)
            .await
            .map_err(|e| store_error(e, RESOURCE, id))?;
        tracing::info!(credential = %id, kind = kind.as_str(), "storage credential created");
        self.details(credential)
    }

    /// Replaces a credential's secret (and for `aws-user` its key id): configurations that use
    /// it switch to the new secret at once. New material of the other type is refused.
    pub async fn rotate(
        &self,
        caller: &Caller,
        id: Uuid,
        request: RotationRequest,
    ) -> Result<CredentialDetails, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        let mut credential = self.stored(id).await?;
        let kind = kind_of(&credential);
        // For a role, the ARN may stay as it is: only the external id is secret.
        let role_arn = match (&credential.identity, request.role_arn.as_deref()) {
            (CredentialIdentity::AwsRole { role_arn }, None) => Some(role_arn.to_string()),
            (_, given) => given.map(str::to_owned),
        };
        let requested = if request.access_key_id.is_some() || request.secret_access_key.is_some() {
            CredentialKind::AwsUser
        } else if request.external_id.is_some() || request.role_arn.is_some() {
            CredentialKind::AwsRole
        } else {
            kind
        };
        if requested != kind {
            return Err(Problem::new(
                ErrorCode::CredentialKindMismatch,
                &[("name", credential.name.as_str()), ("actual", kind.as_str()), ("requested", requested.as_str())],
            )
            .into());
        }
        let material = material(
            kind,
            request.access_key_id.as_deref(),
            request.secret_access_key.as_deref(),
            role_arn.as_deref(),
            request.external_id.as_deref(),
        )
        .map_err(|m| ServiceError::from(Problem::invalid_request(&m)))?;
        debug_assert_eq!(material.kind(), kind);
        self.refuse_platform_roles(&material).await?;
        let (identity, sealed_secret) = self.seal(id, material);
        credential.identity = identity;
        credential.sealed_secret = sealed_secret;
        credential.updated_at = now();
        self.services
            .store()
            .credentials
            .rotate_credential(&credential)
            .await
            .map_err(|e| store_error(e, RESOURCE, id))?;
        tracing::info!(credential = %id, "storage credential rotated");
        self.details(credential)
    }

    /// Deletes a credential that no configuration uses.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<(), ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        self.services.store().credentials.delete_credential(id).await.map_err(|e| store_error(e, RESOURCE, id))?;
        tracing::info!(credential = %id, "storage credential deleted");
        Ok(())
    }

    /// The trust policy an `aws-role` credential's role needs: the platform's principal may
    /// assume it with the credential's external id only.
    pub async fn trust_policy(&self, caller: &Caller, id: Uuid) -> Result<serde_json::Value, ServiceError> {
        caller.require_admin(SYSTEM_SETTINGS)?;
        let credential = self.stored(id).await?;
        if !matches!(credential.identity, CredentialIdentity::AwsRole { .. }) {
            return Err(Problem::new(
                ErrorCode::CredentialKindMismatch,
                &[("name", credential.name.as_str()), ("actual", "aws-user"), ("requested", "aws-role")],
            )
            .into());
        }
        let external_id = self.external_id(&credential)?;
        let platform = self.services.lifecycle().platform_identity().await.map_err(aws_problem)?;
        let principal = byos_domain::policies::trust_principal(&platform.arn);
        Ok(byos_domain::policies::role_trust_policy(&principal, &external_id))
    }

    /// The stored credential `id`, or its catalogue error.
    async fn stored(&self, id: Uuid) -> Result<Credential, ServiceError> {
        self.services.store().credentials.get_credential(id).await.map_err(|e| store_error(e, RESOURCE, id))
    }

    fn details(&self, credential: Credential) -> Result<CredentialDetails, ServiceError> {
        let external_id = match credential.identity {
            CredentialIdentity::AwsUser { .. } => None,
            CredentialIdentity::AwsRole { .. } => Some(self.external_id(&credential)?),
        };
        Ok(CredentialDetails { credential, external_id })
    }

    /// An `aws-role` credential's external id, unsealed.
    fn external_id(&self, c: &Credential) -> Result<ExternalId, ServiceError> {
        let unreadable = |source: Box<dyn std::error::Error + Send + Sync>| {
            ServiceError::from(Internal::SealedSecret { credential: c.id, source })
        };
        let opened =
            self.services.master_key().open(&c.sealed_secret, c.id.as_bytes()).map_err(|e| unreadable(e.into()))?;
        let text = String::from_utf8(opened).map_err(|e| unreadable(e.into()))?;
        ExternalId::parse(&text).map_err(|e| unreadable(e.into()))
    }

    /// Refuses a role of the platform's own account: the platform's identity may be trusted by
    /// its own roles without an external id, and a customer must never reach them through a
    /// credential.
    async fn refuse_platform_roles(&self, material: &Material) -> Result<(), ServiceError> {
        let Material::Role { role_arn, .. } = material else { return Ok(()) };
        let platform = self.services.lifecycle().platform_identity().await.map_err(aws_problem)?;
        if role_arn.account() == platform.account {
            return Err(Problem::new(
                ErrorCode::RoleInPlatformAccount,
                &[("roleArn", role_arn.as_str()), ("account", &platform.account)],
            )
            .into());
        }
        Ok(())
    }

    /// Seals the secret for the credential `id` and returns the stored identity with it.
    fn seal(&self, id: Uuid, material: Material) -> (CredentialIdentity, Vec<u8>) {
        let key = self.services.master_key();
        match material {
            Material::User { access_key_id, secret } => {
                (CredentialIdentity::AwsUser { access_key_id }, key.seal(secret.expose().as_bytes(), id.as_bytes()))
            }
            Material::Role { role_arn, external_id } => {
                (CredentialIdentity::AwsRole { role_arn }, key.seal(external_id.expose().as_bytes(), id.as_bytes()))
            }
        }
    }
}

fn kind_of(credential: &Credential) -> CredentialKind {
    match credential.identity {
        CredentialIdentity::AwsUser { .. } => CredentialKind::AwsUser,
        CredentialIdentity::AwsRole { .. } => CredentialKind::AwsRole,
    }
}

/// The platform's own call to AWS failed.
fn aws_problem(e: byos_aws::AwsError) -> ServiceError {
    let problem = if e.retryable() {
        Problem::new(ErrorCode::AwsUnreachable, &[("message", &e.to_string())])
    } else {
        Problem::new(ErrorCode::AwsRequestFailed, &[("operation", e.operation), ("message", &e.message)])
    };
    problem.into()
}

/// The identity and the secret of a credential, validated.
enum Material {
    User { access_key_id: AccessKeyId, secret: SecretAccessKey },
    Role { role_arn: RoleArn, external_id: ExternalId },
}

impl Material {
    fn kind(&self) -> CredentialKind {
        match self {
            Material::User { .. } => CredentialKind::AwsUser,
            Material::Role { .. } => CredentialKind::AwsRole,
        }
    }
}

fn field<T>(name: &str, value: Option<&str>, parse: fn(&str) -> Result<T, NameError>) -> Result<T, String> {
    parse(required(name, value)?).map_err(|e| format!("{name}: {e}"))
}

/// Validates the fields of one kind, refusing those of the other. An `aws-role` credential gets
/// a new external id of the server's; a caller's is refused.
fn material(
    kind: CredentialKind,
    access_key_id: Option<&str>,
    secret_access_key: Option<&str>,
    role_arn: Option<&str>,
    external_id: Option<&str>,
) -> Result<Material, String> {
    let refuse = |name: &str, present: bool| {
        if present { Err(format!("{name}: not a field of a {} credential", kind.as_str())) } else { Ok(()) }
    };
    if kind == CredentialKind::AwsRole && external_id.is_some() {
        return Err("externalId: the server generates an aws-role credential's external id; leave it out and \
                    read it (and the role's trust policy) from the credential"
            .to_owned());
    }
    match kind {
        CredentialKind::AwsUser => {
            refuse("roleArn", role_arn.is_some())?;
            refuse("externalId", external_id.is_some())?;
            Ok(Material::User {
                access_key_id: field("accessKeyId", access_key_id, AccessKeyId::parse)?,
                secret: field("secretAccessKey", secret_access_key, SecretAccessKey::parse)?,
            })
        }
        CredentialKind::AwsRole => {
            refuse("accessKeyId", access_key_id.is_some())?;
            refuse("secretAccessKey", secret_access_key.is_some())?;
            let external_id = byos_secrets::generate_external_id();
            Ok(Material::Role {
                role_arn: field("roleArn", role_arn, RoleArn::parse)?,
                external_id: ExternalId::parse(&external_id)
                    .unwrap_or_else(|e| unreachable!("a generated external id parses: {e}")),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Fixture, SECRET, member};

    fn user(name: &str) -> CredentialRequest {
        CredentialRequest {
            name: Some(name.to_owned()),
            kind: Some("aws-user".to_owned()),
            access_key_id: Some("AKIAIOSFODNN7EXAMPLE".to_owned()),
            secret_access_key: Some(SECRET.to_owned()),
            ..CredentialRequest::default()
        }
    }

    #[tokio::test]
    async fn secrets_are_sealed_and_members_are_refused() {
        let fixture = Fixture::new().await;
        let credentials = fixture.services.credentials();
        let created = credentials.create(&fixture.admin, user("key")).await.unwrap();
        let sealed = &created.credential.sealed_secret;
        assert!(!sealed.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "the secret is sealed");
        assert!(created.external_id.is_none());
        assert!(!format!("{:?}", user("key")).contains(SECRET), "requests do not show their secret");

        let refused = credentials.list(&member(&[])).await.err().and_then(|e| e.problem().cloned());
        assert_eq!(refused.map(|p| p.entry().code), Some("access-forbidden"));
        let taken = credentials.create(&fixture.admin, user("key")).await.err().and_then(|e| e.problem().cloned());
        assert_eq!(taken.map(|p| p.entry().code), Some("name-taken"));
    }

    #[tokio::test]
    async fn a_rotation_keeps_the_credentials_type() {
        let fixture = Fixture::new().await;
        let credentials = fixture.services.credentials();
        let created = credentials.create(&fixture.admin, user("key")).await.unwrap();
        let id = created.credential.id;
        let to_role =
            RotationRequest { role_arn: Some("arn:aws:iam::123456789012:role/r".to_owned()), ..Default::default() };
        let refused = credentials.rotate(&fixture.admin, id, to_role).await.err().and_then(|e| e.problem().cloned());
        assert_eq!(
            refused.map(|p| p.message().to_owned()).as_deref(),
            Some("Storage credential 'key' is of type aws-user; the request is for type aws-role")
        );
    }
}
