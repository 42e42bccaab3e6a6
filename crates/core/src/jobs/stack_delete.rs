//! Running `stack.delete` (delete, then wait for the stack to go) and `stack.inspect`
//! (status, outputs, the last events and the resources).

use std::collections::BTreeMap;

use serde_json::json;

use super::Jobs;
use super::outcome::{Done, Failure};
use super::spec::stack_name;
use super::stack::{Ending, StepResult, TAG_BLUEPRINT, Waited, at, outputs, stack_failure, token};
use crate::error::Code;
use crate::model::{JobRecord, StepState};
use crate::ports::aws::TemporaryCredentials;

/// How many of a stack's last events `stack.inspect` reports.
const INSPECT_EVENTS: usize = 20;

impl Jobs {
    /// `stack.delete`.
    pub(super) async fn stack_delete(
        &self,
        job: &JobRecord,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> StepResult<Ending> {
        let cfn = &self.clients.cloudformation;
        let stack = stack_name(&job.org, name);
        let existing = cfn
            .describe_stack(creds, &stack)
            .await
            .map_err(at("delete_stack"))?;
        let Some(existing) = existing else {
            self.set_step(&job.id, "wait", StepState::Skipped, None)
                .await
                .map_err(at("wait"))?;
            return Ok(Ending::Succeeded(Done {
                result: json!({"stack_name": stack, "existed": false}),
                secret: None,
                request_id: None,
            }));
        };
        let request_id = cfn
            .delete_stack(creds, &stack, &token(&job.id, "delete"))
            .await
            .map_err(at("delete_stack"))?;
        if let Some(d) = self.settings.test_step_delay {
            self.records.clock().sleep(d).await;
        }
        let step = |s, st, r| self.set_step(&job.id, s, st, r);
        if step("delete_stack", StepState::Succeeded, request_id)
            .await
            .map_err(at("delete_stack"))?
            .is_none()
            || step("wait", StepState::Running, None)
                .await
                .map_err(at("wait"))?
                .is_none()
        {
            return Ok(Ending::Gone);
        }
        match self.wait_stack(&job.id, creds, &stack).await? {
            Waited::Gone => return Ok(Ending::Gone),
            Waited::Final(info, _) if info.status != "DELETE_COMPLETE" => {
                return Err(stack_failure(
                    "wait",
                    format!(
                        "stack {stack} ended {}: {}",
                        info.status,
                        info.status_reason.as_deref().unwrap_or("no reason given")
                    ),
                ));
            }
            Waited::Final(..) | Waited::Deleted => {}
        }
        Ok(Ending::Succeeded(Done {
            result: json!({"stack_name": stack, "stack_id": existing.stack_id, "existed": true, "status": "DELETE_COMPLETE"}),
            secret: None,
            request_id: None,
        }))
    }

    /// `stack.inspect`: status, outputs, the last events and the resources.
    pub(super) async fn stack_inspect(
        &self,
        job: &JobRecord,
        creds: &TemporaryCredentials,
        name: &str,
    ) -> StepResult<Ending> {
        let cfn = &self.clients.cloudformation;
        let stack = stack_name(&job.org, name);
        let step = "describe_stack";
        let Some(info) = cfn.describe_stack(creds, &stack).await.map_err(at(step))? else {
            return Err((
                step,
                Failure {
                    code: Code::StackNotFound,
                    message: format!("stack {stack} does not exist"),
                    aws_code: None,
                    request_id: None,
                },
            ));
        };
        let events = cfn
            .stack_events(creds, &stack, INSPECT_EVENTS)
            .await
            .map_err(at(step))?;
        let resources = cfn.stack_resources(creds, &stack).await.map_err(at(step))?;
        Ok(Ending::Succeeded(Done {
            result: json!({
                "stack_name": stack, "stack_id": info.stack_id, "status": info.status,
                "status_reason": info.status_reason, "outputs": outputs(&info),
                "tags": info.tags.iter().cloned().collect::<BTreeMap<_, _>>(),
                "blueprint": info.tags.iter().find(|(k, _)| k == TAG_BLUEPRINT).map(|(_, v)| v),
                "events": events, "resources": resources,
            }),
            secret: None,
            request_id: None,
        }))
    }
}
