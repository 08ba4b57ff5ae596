//! The order lifecycle at the CA: refresh, place, authorizations and challenges, finalize,
//! download, revoke, and the mapping of ACME statuses onto certform's.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration as StdDuration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use instant_acme::{
    AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus as AcmeOrderStatus, RetryPolicy, RevocationRequest,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::ari::{ari_cert_id, certificate_identifier, looks_like_cert_id};
use super::chain::leaf_der;
use super::problem::{classify, classify_with, is_bad_nonce, problem_type, typed_problem};
use super::transport::last_response;
use super::{
    AuthorizationInfo, CertificateRecord, ChallengeInfo, Collectable, Inner, Operation, Polling,
    Revocation, TagEntry, NONCE_ATTEMPTS,
};
use crate::ca::{
    CaError, Challenge, ChallengeKind, ErrorClass, OrderQuery, OrderRequest, RevokeOutcome,
};
use crate::keys;
use crate::observed::{DcvStatus, OrderStatus, OrderView};
use crate::serial::Serial;
use crate::spec::RevocationReason;

impl Inner {
    pub(super) async fn refresh_one(
        &self,
        query: &OrderQuery,
    ) -> Result<Option<OrderView>, CaError> {
        let order_url = match (&query.order_id, &query.tag) {
            (Some(order_id), _) => order_id.clone(),
            (None, Some(tag)) => match self.tag_entry(tag)? {
                Some(entry) => entry.order_url,
                None => return Ok(None),
            },
            (None, None) => return Ok(None),
        };
        match self.load_order(&order_url).await? {
            Some(mut order) => {
                let view = self.view(&mut order).await?;
                self.keep(order);
                Ok(Some(view))
            }
            None => Ok(None),
        }
    }

    pub(super) async fn place_order(&self, request: &OrderRequest) -> Result<OrderView, CaError> {
        // The same tag again (a retry after a lost answer): adopt the order it already placed.
        if let Some(entry) = self.tag_entry(&request.tag)? {
            if let Some(mut order) = self.load_order(&entry.order_url).await? {
                if order.state().status != AcmeOrderStatus::Invalid {
                    let view = self.view(&mut order).await?;
                    self.keep(order);
                    return Ok(view);
                }
            }
        }

        let mut names: Vec<String> = Vec::new();
        for name in std::iter::once(&request.common_name).chain(&request.sans) {
            if !name.is_empty() && !names.contains(name) {
                names.push(name.clone());
            }
        }
        if names.is_empty() {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!("ACME account `{}`: the order names no domain", self.name),
            ));
        }
        let identifiers: Vec<Identifier> = names.into_iter().map(Identifier::Dns).collect();
        let replaces = request
            .renewal_of
            .as_deref()
            .and_then(|renewal_of| self.replaces_for(renewal_of));

        let result = self
            .with_nonce_retry(|| {
                let replaces = replaces.as_deref();
                let identifiers = &identifiers;
                async move {
                    let mut new_order = NewOrder::new(identifiers);
                    if let Some(profile) = &self.settings.profile {
                        new_order = new_order.profile(profile);
                    }
                    if let Some(cert_id) = replaces {
                        let with_replaces = new_order.replaces(certificate_identifier(cert_id));
                        match self.account.new_order(&with_replaces).await {
                            // No ARI at this CA: checked before anything is sent, so order
                            // without `replaces`.
                            Err(instant_acme::Error::Unsupported(_)) => {}
                            other => return other,
                        }
                        new_order = NewOrder::new(identifiers);
                        if let Some(profile) = &self.settings.profile {
                            new_order = new_order.profile(profile);
                        }
                    }
                    self.account.new_order(&new_order).await
                }
            })
            .await;
        let mut order = match result {
            Ok(order) => order,
            Err(error) => {
                // The CA created the order (201 + Location) but its answer was not accepted
                // (say, a `replaces` it did not echo): adopt the order rather than lose it.
                let last = last_response();
                match (last.status, last.location.clone()) {
                    (Some(201), Some(order_url)) => {
                        tracing::warn!(
                            account = %self.name,
                            order = %order_url,
                            error = %classify_with(&self.name, Operation::Order, error, &last),
                            "adopting an order whose creation answer was not understood"
                        );
                        self.load_order(&order_url)
                            .await?
                            .ok_or_else(|| {
                                CaError::new(
                                    ErrorClass::Protocol,
                                    format!(
                                        "ACME account `{}`: order `{order_url}` was created but cannot be read",
                                        self.name
                                    ),
                                )
                            })?
                    }
                    _ => return Err(classify_with(&self.name, Operation::Order, error, &last)),
                }
            }
        };

        let entry = TagEntry {
            tag: request.tag.clone(),
            order_url: order.url().to_string(),
            placed: OffsetDateTime::now_utc(),
        };
        let indexed = match self.write_tag_entry(&entry).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(
                    account = %self.name,
                    order = %entry.order_url,
                    %error,
                    "order placed but the tag index could not be written"
                );
                false
            }
        };
        tracing::debug!(account = %self.name, order = %entry.order_url, tag = %request.tag, "placed ACME order");

        match self.view(&mut order).await {
            Ok(view) => {
                self.keep(order);
                Ok(view)
            }
            // Without the index a retry could not find this order: answer what is known.
            Err(_) if !indexed => Ok(OrderView {
                order_id: order.url().to_string(),
                status: map_status(order.state().status),
                serial: None,
                not_after: None,
                dcv: Vec::new(),
                plan_until: None,
            }),
            Err(error) => Err(error),
        }
    }

    pub(super) async fn challenges(&self, order_id: &str) -> Result<Vec<Challenge>, CaError> {
        let mut order = self.order_for(order_id).await?;
        let authorizations = self.authorizations(&mut order).await?;
        self.keep(order);
        let thumbprint = self.account.key_thumbprint();
        let mut challenges = Vec::new();
        for authorization in authorizations {
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let bare = authorization
                .domain
                .strip_prefix("*.")
                .unwrap_or(&authorization.domain);
            for challenge in &authorization.challenges {
                let key_authorization = format!("{}.{thumbprint}", challenge.token);
                let kind = match challenge.kind {
                    ChallengeType::Dns01 => ChallengeKind::DnsTxt {
                        name: format!("_acme-challenge.{bare}"),
                        value: URL_SAFE_NO_PAD.encode(Sha256::digest(key_authorization)),
                    },
                    ChallengeType::Http01 => ChallengeKind::Http {
                        path: format!("/.well-known/acme-challenge/{}", challenge.token),
                        content: key_authorization,
                    },
                    _ => continue,
                };
                challenges.push(Challenge {
                    id: challenge.url.clone(),
                    domain: authorization.domain.clone(),
                    kind,
                    status: challenge_status(challenge.status).to_string(),
                });
            }
        }
        Ok(challenges)
    }

    pub(super) async fn respond(
        &self,
        order_id: &str,
        challenges: &[Challenge],
    ) -> Result<(), CaError> {
        let mut order = self.order_for(order_id).await?;
        // Read every authorization first (retrying bad nonces; none when the order kept from
        // the last step has them); the loop below then works on the cached states.
        let known = self.authorizations(&mut order).await?;
        let wanted: BTreeSet<&str> = challenges.iter().map(|c| c.id.as_str()).collect();
        let offered: BTreeSet<&str> = known
            .iter()
            .flat_map(|authorization| authorization.challenges.iter())
            .map(|challenge| challenge.url.as_str())
            .collect();
        if let Some(unknown) = wanted.iter().find(|id| !offered.contains(*id)) {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: challenge `{unknown}` is not part of order `{order_id}`",
                    self.name
                ),
            ));
        }

        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authorization =
                result.map_err(|error| classify(&self.name, Operation::Read, error))?;
            if authorization.status != AuthorizationStatus::Pending {
                continue;
            }
            let Some((kind, status)) = authorization
                .challenges
                .iter()
                .find(|challenge| wanted.contains(challenge.url.as_str()))
                .map(|challenge| (challenge.r#type.clone(), challenge.status))
            else {
                continue;
            };
            if status != ChallengeStatus::Pending {
                continue;
            }
            let Some(mut handle) = authorization.challenge(kind) else {
                continue;
            };
            let url = handle.url.clone();
            let mut attempt = 1;
            loop {
                match handle.set_ready().await {
                    Ok(()) => {
                        if let Ok(mut answered) = self.answered.lock() {
                            answered.insert(url);
                        }
                        break;
                    }
                    Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => {
                        attempt += 1;
                    }
                    Err(error) => return Err(classify(&self.name, Operation::Respond, error)),
                }
            }
        }
        self.keep(order);
        Ok(())
    }

    pub(super) async fn finalize(
        &self,
        order_id: &str,
        csr_der: &[u8],
        polling: Polling,
    ) -> Result<OrderView, CaError> {
        let deadline = Instant::now() + polling.timeout;
        let mut order = self.order_for(order_id).await?;

        // Waiting only makes sense once every pending authorization has an answered challenge
        // (a POSTed challenge turns `processing` at once, RFC 8555 §7.5.1).
        if order.state().status == AcmeOrderStatus::Pending {
            let authorizations = self.authorizations(&mut order).await?;
            let answered = self.answered.lock().ok();
            let unanswered: Vec<String> = authorizations
                .into_iter()
                .filter(|authorization| {
                    authorization.status == AuthorizationStatus::Pending
                        && authorization.challenges.iter().all(|challenge| {
                            challenge.status == ChallengeStatus::Pending
                                && !answered
                                    .as_ref()
                                    .is_some_and(|answered| answered.contains(&challenge.url))
                        })
                })
                .map(|authorization| format!("`{}`", authorization.domain))
                .collect();
            drop(answered);
            if !unanswered.is_empty() {
                return Err(CaError::new(
                    ErrorClass::Rejected,
                    format!(
                        "ACME account `{}`: order `{order_id}` cannot be finalized: no challenge was answered for {}",
                        self.name,
                        unanswered.join(", ")
                    ),
                ));
            }
        }

        // Wait until every authorization is valid.
        while order.state().status == AcmeOrderStatus::Pending {
            let policy = retry_policy(polling, deadline, order_id, &self.name, "pending")?;
            match order.poll_ready(&policy).await {
                Ok(_) => {}
                Err(error) if is_bad_nonce(&error) => {}
                // The order turned invalid: explained below.
                Err(_) if order.state().status == AcmeOrderStatus::Invalid => {}
                Err(instant_acme::Error::Timeout(_)) => {
                    return Err(still(order_id, &self.name, "pending", polling.timeout))
                }
                Err(error) => return Err(classify(&self.name, Operation::Read, error)),
            }
        }

        if order.state().status == AcmeOrderStatus::Ready {
            let mut attempt = 1;
            loop {
                match order.finalize_csr(csr_der).await {
                    Ok(()) => break,
                    Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => {
                        attempt += 1;
                        // The CA may have taken the request after all: look before retrying.
                        self.refresh_order(&mut order).await?;
                        if order.state().status != AcmeOrderStatus::Ready {
                            break;
                        }
                    }
                    Err(error) => return Err(classify(&self.name, Operation::Finalize, error)),
                }
            }
        }

        // Wait for issuance.
        let mut downloaded = None;
        loop {
            match order.state().status {
                AcmeOrderStatus::Valid | AcmeOrderStatus::Invalid => break,
                AcmeOrderStatus::Pending | AcmeOrderStatus::Ready => {
                    return Err(CaError::new(
                        ErrorClass::Protocol,
                        format!(
                            "ACME account `{}`: order `{order_id}` went back to `{}` after finalize",
                            self.name,
                            status_name(order.state().status)
                        ),
                    ));
                }
                AcmeOrderStatus::Processing => {}
            }
            let policy = retry_policy(polling, deadline, order_id, &self.name, "processing")?;
            match order.poll_certificate(&policy).await {
                Ok(chain) => {
                    let alternates = last_response().alternates;
                    downloaded = Some(self.choose_chain(chain, alternates).await);
                    break;
                }
                Err(error) if is_bad_nonce(&error) => {}
                Err(_) if order.state().status == AcmeOrderStatus::Invalid => {}
                Err(instant_acme::Error::Timeout(_)) => {
                    return Err(still(order_id, &self.name, "processing", polling.timeout))
                }
                Err(error) => return Err(classify(&self.name, Operation::Download, error)),
            }
        }

        if order.state().status == AcmeOrderStatus::Invalid {
            return Err(self.invalid_order(&mut order).await);
        }
        if let Some(chain) = downloaded {
            self.store_certificate(&mut order, &chain).await?;
        }
        self.view(&mut order).await
    }

    pub(super) async fn revoke(
        &self,
        order_id: &str,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<RevokeOutcome, CaError> {
        let mut record = self.issued_record(order_id).await?;
        if *serial != record.serial {
            return Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: order `{order_id}` issued serial `{}`, not `{serial}`",
                    self.name, record.serial
                ),
            ));
        }
        if record.revoked.is_some() {
            return Ok(RevokeOutcome::Revoked);
        }
        let leaf = leaf_der(&record.chain_pem).ok_or_else(|| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: stored chain of order `{order_id}` holds no certificate",
                    self.name
                ),
            )
        })?;
        let result = self
            .with_nonce_retry(|| {
                let leaf = leaf.clone();
                async move {
                    let certificate = leaf.into();
                    self.account
                        .revoke(&RevocationRequest {
                            certificate: &certificate,
                            reason: Some(acme_reason(reason)),
                        })
                        .await
                }
            })
            .await;
        match result {
            Ok(()) => {}
            // Revoked before (a run that died before recording it): the goal is reached.
            Err(instant_acme::Error::Api(problem))
                if problem_type(&problem) == Some("alreadyRevoked") => {}
            Err(error) => return Err(classify(&self.name, Operation::Revoke, error)),
        }
        record.revoked = Some(Revocation {
            reason: reason.code(),
            at: OffsetDateTime::now_utc(),
        });
        self.write_record(&record).await?;
        Ok(RevokeOutcome::Revoked)
    }

    /// The view of an order as certform's model sees it.
    async fn view(&self, order: &mut Order) -> Result<OrderView, CaError> {
        let status = order.state().status;
        let mut view = OrderView {
            order_id: order.url().to_string(),
            status: map_status(status),
            serial: None,
            not_after: None,
            dcv: Vec::new(),
            plan_until: None,
        };
        if status == AcmeOrderStatus::Valid {
            let record = self.record_for(order).await?;
            view.serial = Some(record.serial.clone());
            view.not_after = Some(record.not_after);
            if record.revoked.is_some() {
                view.status = OrderStatus::Revoked;
            }
        } else {
            view.dcv = self
                .authorizations(order)
                .await?
                .into_iter()
                .map(|authorization| DcvStatus {
                    domain: authorization.domain,
                    method: "acme".to_string(),
                    status: authorization_status(authorization.status).to_string(),
                })
                .collect();
        }
        Ok(view)
    }

    /// The stored certificate of a valid order, downloading (and storing) it the first time.
    async fn record_for(&self, order: &mut Order) -> Result<CertificateRecord, CaError> {
        if let Some(record) = self.read_record(order.url())? {
            return Ok(record);
        }
        let mut attempt = 1;
        let chain = loop {
            match order.certificate().await {
                Ok(Some(chain)) => break chain,
                Ok(None) => {
                    return Err(CaError::new(
                        ErrorClass::Transient,
                        format!(
                            "ACME account `{}`: order `{}` is still processing",
                            self.name,
                            order.url()
                        ),
                    ))
                }
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                Err(error) => return Err(classify(&self.name, Operation::Download, error)),
            }
        };
        let alternates = last_response().alternates;
        let chain = self.choose_chain(chain, alternates).await;
        self.store_certificate(order, &chain).await
    }

    /// The stored certificate of `order_id`, from disk or the CA; `NotYet` while the order
    /// is pending, ready or processing.
    pub(super) async fn certificate_of(&self, order_id: &str) -> Result<Collectable, CaError> {
        if let Some(record) = self.read_record(order_id)? {
            return Ok(Collectable::Ready(record));
        }
        let mut order = self.require_order(order_id).await?;
        match order.state().status {
            AcmeOrderStatus::Valid => self.record_for(&mut order).await.map(Collectable::Ready),
            AcmeOrderStatus::Invalid => Err(self.invalid_order(&mut order).await),
            status => Ok(Collectable::NotYet(status)),
        }
    }

    /// The stored certificate of `order_id`, or an error when it cannot be collected now.
    async fn issued_record(&self, order_id: &str) -> Result<CertificateRecord, CaError> {
        match self.certificate_of(order_id).await? {
            Collectable::Ready(record) => Ok(record),
            Collectable::NotYet(status) => Err(CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: order `{order_id}` is `{}`, not issued",
                    self.name,
                    status_name(status)
                ),
            )),
        }
    }

    /// The live order `order_id` as the last step left it (its authorizations read, its
    /// nonce unspent), else read from the CA. The caller hands it back with `keep`.
    async fn order_for(&self, order_id: &str) -> Result<Order, CaError> {
        let kept = self
            .orders
            .lock()
            .ok()
            .and_then(|mut orders| orders.remove(order_id));
        match kept {
            Some(order) => Ok(order),
            None => self.require_order(order_id).await,
        }
    }

    /// Keep a live order for the next DCV step, while it has one (pending, ready or
    /// processing); an issued or invalid order is dropped.
    fn keep(&self, mut order: Order) {
        if matches!(
            order.state().status,
            AcmeOrderStatus::Valid | AcmeOrderStatus::Invalid
        ) {
            return;
        }
        if let Ok(mut orders) = self.orders.lock() {
            orders.insert(order.url().to_string(), order);
        }
    }

    async fn store_certificate(
        &self,
        order: &mut Order,
        chain: &str,
    ) -> Result<CertificateRecord, CaError> {
        let (info, pems) = keys::inspect_chain(chain).map_err(|error| {
            CaError::new(
                ErrorClass::Protocol,
                format!(
                    "ACME account `{}`: the certificate of order `{}` cannot be read",
                    self.name,
                    order.url()
                ),
            )
            .with_source(error)
        })?;
        let record = CertificateRecord {
            order_url: order.url().to_string(),
            certificate_url: order_certificate_url(order),
            chain_pem: pems.concat(),
            serial: info.serial,
            not_after: info.not_after,
            revoked: None,
        };
        self.write_record(&record).await?;
        Ok(record)
    }

    /// The `replaces` certID for a renewal of `renewal_of` (a certID or an order URL whose
    /// certificate is stored here).
    fn replaces_for(&self, renewal_of: &str) -> Option<String> {
        if looks_like_cert_id(renewal_of) {
            return Some(renewal_of.to_string());
        }
        let record = self.read_record(renewal_of).ok().flatten()?;
        let der = leaf_der(&record.chain_pem)?;
        ari_cert_id(&der).ok()
    }

    /// Why an invalid order failed: its own problem, or its failed authorizations'.
    async fn invalid_order(&self, order: &mut Order) -> CaError {
        // Authorizations cached on an order kept between steps predate the failure: read the
        // order again so they are read afresh (only on this failure path).
        let mut fresh = self.load_order(order.url()).await.ok().flatten();
        let order = match fresh.as_mut() {
            Some(fresh) => fresh,
            None => order,
        };
        let mut reasons = Vec::new();
        let mut first: Option<crate::ca::Problem> = None;
        if let Some(problem) = &order.state().error {
            let typed = typed_problem(problem);
            reasons.push(typed.describe());
            first = Some(typed);
        }
        if let Ok(authorizations) = self.authorizations(order).await {
            for authorization in authorizations {
                if authorization.status != AuthorizationStatus::Invalid {
                    continue;
                }
                for challenge in &authorization.challenges {
                    if let Some(problem) = &challenge.error {
                        let typed = typed_problem(problem);
                        reasons.push(format!("`{}`: {}", authorization.domain, typed.describe()));
                        first.get_or_insert(typed);
                    }
                }
            }
        }
        if reasons.is_empty() {
            reasons.push("the CA gave no reason".to_string());
        }
        let error = CaError::new(
            ErrorClass::Rejected,
            format!(
                "ACME account `{}`: order `{}` is invalid: {}",
                self.name,
                order.url(),
                reasons.join("; ")
            ),
        );
        match first {
            Some(problem) => error.with_problem(problem),
            None => error,
        }
    }

    /// Read every authorization of `order` (retrying bad nonces).
    async fn authorizations(&self, order: &mut Order) -> Result<Vec<AuthorizationInfo>, CaError> {
        let mut attempt = 1;
        loop {
            match collect_authorizations(order).await {
                Ok(list) => return Ok(list),
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                Err(error) => return Err(classify(&self.name, Operation::Read, error)),
            }
        }
    }

    async fn refresh_order(&self, order: &mut Order) -> Result<(), CaError> {
        let mut attempt = 1;
        loop {
            match order.refresh().await {
                Ok(_) => return Ok(()),
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                Err(error) => return Err(classify(&self.name, Operation::Read, error)),
            }
        }
    }

    /// Read an order by URL; `None` when the CA does not know it (404) or the id is no URL.
    pub(super) async fn load_order(&self, order_url: &str) -> Result<Option<Order>, CaError> {
        if !order_url.starts_with("https://") || order_url.contains(char::is_whitespace) {
            return Ok(None);
        }
        let result = self
            .with_nonce_retry(|| self.account.order(order_url.to_string()))
            .await;
        match result {
            Ok(order) => Ok(Some(order)),
            // 404 on the order itself (Pebble sends it without a body, Boulder with one).
            Err(instant_acme::Error::Api(_)) | Err(instant_acme::Error::Json(_))
                if last_response().status == Some(404) =>
            {
                Ok(None)
            }
            Err(instant_acme::Error::InvalidUri(_)) | Err(instant_acme::Error::Http(_)) => Ok(None),
            Err(error) => Err(classify(&self.name, Operation::Read, error)),
        }
    }

    async fn require_order(&self, order_id: &str) -> Result<Order, CaError> {
        self.load_order(order_id).await?.ok_or_else(|| {
            CaError::new(
                ErrorClass::Rejected,
                format!(
                    "ACME account `{}`: the CA has no order `{order_id}`",
                    self.name
                ),
            )
        })
    }

    /// Run `call` again while the CA answers `badNonce` (a request it did not process).
    pub(super) async fn with_nonce_retry<T, F, Fut>(
        &self,
        mut call: F,
    ) -> Result<T, instant_acme::Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, instant_acme::Error>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(error) if is_bad_nonce(&error) && attempt < NONCE_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }
}

async fn collect_authorizations(
    order: &mut Order,
) -> Result<Vec<AuthorizationInfo>, instant_acme::Error> {
    let mut list = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let authorization = result?;
        list.push(AuthorizationInfo {
            domain: authorization.identifier().to_string(),
            status: authorization.status,
            challenges: authorization
                .challenges
                .iter()
                .map(|challenge| ChallengeInfo {
                    kind: challenge.r#type.clone(),
                    url: challenge.url.clone(),
                    token: challenge.token.clone(),
                    status: challenge.status,
                    error: challenge.error.clone(),
                })
                .collect(),
        });
    }
    Ok(list)
}

fn retry_policy(
    polling: Polling,
    deadline: Instant,
    order_id: &str,
    name: &str,
    waiting_in: &str,
) -> Result<RetryPolicy, CaError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(still(order_id, name, waiting_in, polling.timeout));
    }
    Ok(RetryPolicy::new()
        .initial_delay(polling.initial_delay)
        .backoff(polling.backoff)
        .timeout(remaining))
}

fn still(order_id: &str, name: &str, status: &str, timeout: StdDuration) -> CaError {
    CaError::new(
        ErrorClass::Transient,
        format!(
            "ACME account `{name}`: order `{order_id}` is still `{status}` after {}s",
            timeout.as_secs()
        ),
    )
}

fn order_certificate_url(order: &mut Order) -> Option<String> {
    order.state().certificate.clone()
}

pub(super) fn map_status(status: AcmeOrderStatus) -> OrderStatus {
    match status {
        AcmeOrderStatus::Pending | AcmeOrderStatus::Processing => OrderStatus::Pending,
        AcmeOrderStatus::Ready => OrderStatus::Ready,
        AcmeOrderStatus::Valid => OrderStatus::Issued,
        AcmeOrderStatus::Invalid => OrderStatus::Rejected,
    }
}

pub(super) fn status_name(status: AcmeOrderStatus) -> &'static str {
    match status {
        AcmeOrderStatus::Pending => "pending",
        AcmeOrderStatus::Ready => "ready",
        AcmeOrderStatus::Processing => "processing",
        AcmeOrderStatus::Valid => "valid",
        AcmeOrderStatus::Invalid => "invalid",
    }
}

fn authorization_status(status: AuthorizationStatus) -> &'static str {
    match status {
        AuthorizationStatus::Pending => "pending",
        AuthorizationStatus::Valid => "valid",
        AuthorizationStatus::Invalid => "invalid",
        AuthorizationStatus::Revoked => "revoked",
        AuthorizationStatus::Expired => "expired",
        AuthorizationStatus::Deactivated => "deactivated",
    }
}

fn challenge_status(status: ChallengeStatus) -> &'static str {
    match status {
        ChallengeStatus::Pending => "pending",
        ChallengeStatus::Processing => "processing",
        ChallengeStatus::Valid => "valid",
        ChallengeStatus::Invalid => "invalid",
    }
}

fn acme_reason(reason: RevocationReason) -> instant_acme::RevocationReason {
    match reason {
        RevocationReason::Unspecified => instant_acme::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => instant_acme::RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged => instant_acme::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => instant_acme::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => {
            instant_acme::RevocationReason::CessationOfOperation
        }
    }
}
