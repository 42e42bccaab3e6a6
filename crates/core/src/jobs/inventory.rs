//! Running `inventory`: the account's VPCs, EC2 instances, RDS instances, key pairs and the
//! org's rolegate stacks, with their tags, in one result. One read-only step per service call.

use std::collections::BTreeMap;

use serde_json::json;

use super::Jobs;
use super::outcome::Done;
use super::stack::{Ending, StepResult};
use crate::model::{JobRecord, StepState};
use crate::ports::aws::TemporaryCredentials;

impl Jobs {
    /// `inventory`.
    pub(super) async fn inventory(
        &self,
        job: &JobRecord,
        creds: &TemporaryCredentials,
    ) -> StepResult<Ending> {
        let c = &self.clients;
        let mut result = serde_json::Map::new();
        let steps: [(&'static str, &str); 5] = [
            ("describe_vpcs", "vpcs"),
            ("describe_instances", "instances"),
            ("describe_db_instances", "db_instances"),
            ("describe_key_pairs", "key_pairs"),
            ("describe_stacks", "stacks"),
        ];
        for (i, (step, field)) in steps.into_iter().enumerate() {
            let fail = |e: crate::ports::aws::ec2::AwsError| (step, e.into());
            // The first step was marked running with the job's first AWS call.
            if i > 0
                && self
                    .set_step(&job.id, step, StepState::Running, None)
                    .await
                    .map_err(|e| (step, e.into()))?
                    .is_none()
            {
                return Ok(Ending::Gone);
            }
            let value = match step {
                "describe_vpcs" => json!(c.ec2.describe_vpcs(creds).await.map_err(fail)?),
                "describe_instances" => {
                    json!(c.ec2.describe_instances(creds, &[]).await.map_err(fail)?)
                }
                "describe_db_instances" => {
                    json!(c.rds.describe_db_instances(creds).await.map_err(fail)?)
                }
                "describe_key_pairs" => json!(c.ec2.list_key_pairs(creds).await.map_err(fail)?),
                _ => {
                    let prefix = format!("rolegate-{}-", job.org);
                    let stacks = c
                        .cloudformation
                        .list_stacks(creds, &prefix)
                        .await
                        .map_err(fail)?;
                    json!(
                        stacks
                            .into_iter()
                            .map(|s| json!({
                                "name": s.name, "stack_id": s.stack_id, "status": s.status,
                                "tags": s.tags.into_iter().collect::<BTreeMap<_, _>>(),
                                "outputs": s.outputs.into_iter().collect::<BTreeMap<_, _>>(),
                            }))
                            .collect::<Vec<_>>()
                    )
                }
            };
            result.insert(field.to_owned(), value);
            if i + 1 < steps.len()
                && self
                    .set_step(&job.id, step, StepState::Succeeded, None)
                    .await
                    .map_err(|e| (step, e.into()))?
                    .is_none()
            {
                return Ok(Ending::Gone);
            }
        }
        Ok(Ending::Succeeded(Done {
            result: serde_json::Value::Object(result),
            secret: None,
            request_id: None,
        }))
    }
}
