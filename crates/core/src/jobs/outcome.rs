//! What one job step leaves: its result (`Done`) or how it failed (`Failure`), shared by the
//! runner and every kind's step so that neither imports the other.

use crate::error::{Code, Error};
use crate::ports::aws::ec2::AwsError;

/// What a finished AWS step leaves: the result, a secret to seal, the request id.
pub(super) struct Done {
    pub(super) result: serde_json::Value,
    pub(super) secret: Option<crate::model::Secret>,
    pub(super) request_id: Option<String>,
}

/// How a step failed, for the job's `error`.
pub(super) struct Failure {
    pub(super) code: Code,
    pub(super) message: String,
    pub(super) aws_code: Option<String>,
    pub(super) request_id: Option<String>,
}

impl From<AwsError> for Failure {
    fn from(e: AwsError) -> Self {
        let code = match &e {
            AwsError::AccessDenied { .. } => Code::AwsAccessDenied,
            AwsError::Service { .. } => Code::AwsError,
            AwsError::Throttled { .. } | AwsError::Unavailable(_) => Code::AwsUnavailable,
        };
        if let AwsError::Unavailable(detail) = &e {
            tracing::warn!(%detail, "AWS unreachable from a job");
        }
        let message = match &e {
            AwsError::Unavailable(_) => "AWS could not be reached after retries".to_owned(),
            other => other.to_string(),
        };
        Self {
            code,
            message,
            aws_code: e.aws_code().map(str::to_owned),
            request_id: e.request_id().map(str::to_owned),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
            aws_code: None,
            request_id: None,
        }
    }
}
