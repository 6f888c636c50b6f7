//! What happens once, when a server starts on a store: the master key is checked against the
//! one the store was started with, and an empty store gets its first admin token.

use byos_catalog::{NewToken, Store, StoreError, Token};
use byos_domain::{Role, TokenName};
use byos_secrets::{ApiToken, MasterKey, OperatorTokenError};
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a server must not start on this store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    #[error(
        "the master key (fingerprint {given}) is not the one this database's secrets are sealed with \
         (fingerprint {stored}); start with the original BYOS_MASTER_KEY or master.key file"
    )]
    WrongMasterKey { given: String, stored: String },
    #[error("BYOS_ADMIN_TOKEN is not usable: {0}")]
    BadPresetToken(OperatorTokenError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

const MASTER_KEY_FINGERPRINT: &str = "master-key-fingerprint";
const FIRST_ADMIN_TOKEN: &str = "first-admin-token";

/// Records the master key's fingerprint on first start; refuses any other key afterwards.
pub async fn check_master_key(store: &Store, key: &MasterKey) -> Result<(), BootstrapError> {
    let given = key.fingerprint();
    let stored = store.meta.init_meta(MASTER_KEY_FINGERPRINT, &given).await?;
    if stored != given {
        return Err(BootstrapError::WrongMasterKey { given, stored });
    }
    Ok(())
}

/// The admin token made on the first start of an empty store.
#[derive(Debug)]
pub struct FirstStart {
    pub token: ApiToken,
    /// Whether the token is the operator's `BYOS_ADMIN_TOKEN` rather than a generated one.
    pub preset: bool,
}

/// Creates the first admin token if the store has never had one: `preset` (from
/// `BYOS_ADMIN_TOKEN`) or a new random one. Of several replicas starting together on one empty
/// database, exactly one creates it.
pub async fn ensure_admin_token(store: &Store, preset: Option<&str>) -> Result<Option<FirstStart>, BootstrapError> {
    if store.meta.get_meta(FIRST_ADMIN_TOKEN).await?.is_some() {
        return Ok(None);
    }
    let token = match preset {
        Some(value) => ApiToken::from_operator(value).map_err(BootstrapError::BadPresetToken)?,
        None => ApiToken::generate(),
    };
    let id = Uuid::new_v4();
    if store.meta.init_meta(FIRST_ADMIN_TOKEN, &id.to_string()).await? != id.to_string() {
        return Ok(None);
    }
    let record = Token {
        id,
        name: TokenName::parse("first admin").unwrap_or_else(|_| unreachable!("a valid constant")),
        role: Role::Admin,
        projects: Vec::new(),
        hint: token.hint(),
        created_at: OffsetDateTime::now_utc(),
        last_used_at: None,
        expires_at: None,
    };
    store.tokens.insert_token(&NewToken { token: record, hash: token.hash() }).await?;
    Ok(Some(FirstStart { token, preset: preset.is_some() }))
}
