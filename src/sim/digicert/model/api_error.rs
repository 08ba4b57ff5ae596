//! Errors the simulated API answers, as `{"errors":[{"code","message"}]}` with a status.

use std::fmt;

use super::OrderStatus;

/// An error answered to the client as `{"errors":[{"code","message"}]}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: u16,
    pub(crate) code: String,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    pub(crate) fn bad_request(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 400 `bad_request_format`: the body is not the JSON the endpoint takes.
    pub(crate) fn bad_format(detail: impl fmt::Display) -> Self {
        Self::bad_request(
            "bad_request_format",
            format!("The request body is malformed: {detail}"),
        )
    }

    pub(crate) fn missing(field: &str) -> Self {
        Self::bad_request(
            format!("missing_param|{field}"),
            format!("The `{field}` field is required."),
        )
    }

    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::bad_request(format!("invalid_param|{field}"), message)
    }

    pub(crate) fn order_not_found() -> Self {
        Self::new(404, "not_found|order", "The specified order was not found.")
    }

    pub(crate) fn forbidden() -> Self {
        Self::new(
            403,
            "access_denied|missing_permission",
            "The API key you are using does not have permission to carry out the request.",
        )
    }

    pub(crate) fn wrong_status(status: OrderStatus, action: &str) -> Self {
        Self::bad_request(
            "invalid_order_status",
            format!("An order with status `{status}` cannot be {action}."),
        )
    }
}
