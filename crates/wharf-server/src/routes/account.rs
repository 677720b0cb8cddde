//! `GET /account`.

use axum::{Extension, Json};
use wharf_core::api::Account;
use wharf_store::AccountRecord;

use crate::auth::Caller;

pub fn to_api(account: AccountRecord) -> Account {
    Account {
        id: account.id,
        email: account.email,
        name: account.name,
        allow_tracking: false,
        beta: false,
        federated: false,
        verified: true,
        two_factor_authentication: false,
        last_login: None,
        suspended_at: None,
        delinquent_at: None,
        default_organization: None,
        default_team: None,
        identity_provider: None,
        sms_number: None,
        country_of_residence: None,
        created_at: account.created_at,
        updated_at: account.updated_at,
    }
}

/// The account the request's token belongs to.
#[utoipa::path(get, path = "/account", tag = "account",
    responses((status = 200, body = Account), crate::routes::CommonErrors))]
pub async fn info(Extension(Caller(account)): Extension<Caller>) -> Json<Account> {
    Json(to_api(account))
}
