//! A `stack.apply` update is cancellable while CloudFormation runs it: the job becomes
//! `cancelling`, its worker calls CancelUpdateStack, and the job ends `cancelled` once the
//! update has rolled back. A create, and a `stack.delete`, are not cancellable.

use std::sync::Mutex;

use async_trait::async_trait;

use super::*;
use crate::ports::aws::cloudformation::{
    CloudFormation, StackEvent, StackInfo, StackRequest, StackResource, Submitted,
};

/// One stack, `rolegate-acme-app`, that exists; an update stays in progress until
/// cancelled, then rolls back.
#[derive(Debug, Default)]
pub(super) struct UpdatingCfn {
    status: Mutex<Option<String>>,
    cancels: Mutex<Vec<String>>,
}

impl UpdatingCfn {
    fn info(&self) -> Option<StackInfo> {
        self.status.lock().unwrap().clone().map(|status| StackInfo {
            stack_id: "arn:aws:cloudformation:us-east-1:111122223333:stack/rolegate-acme-app/1"
                .into(),
            name: "rolegate-acme-app".into(),
            status,
            status_reason: None,
            outputs: vec![("VpcId".into(), "vpc-1".into())],
            tags: Vec::new(),
        })
    }
}

#[async_trait]
impl CloudFormation for UpdatingCfn {
    async fn describe_stack(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Option<StackInfo>, AwsError> {
        Ok(self.info())
    }
    async fn list_stacks(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Vec<StackInfo>, AwsError> {
        Ok(self.info().into_iter().collect())
    }
    async fn create_stack(
        &self,
        _: &TemporaryCredentials,
        _: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError> {
        *self.status.lock().unwrap() = Some("CREATE_COMPLETE".into());
        Ok(Submitted::Started {
            request_id: Some("c-1".into()),
        })
    }
    async fn update_stack(
        &self,
        _: &TemporaryCredentials,
        _: &StackRequest<'_>,
    ) -> Result<Submitted, AwsError> {
        *self.status.lock().unwrap() = Some("UPDATE_IN_PROGRESS".into());
        Ok(Submitted::Started {
            request_id: Some("u-1".into()),
        })
    }
    async fn delete_stack(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: &str,
    ) -> Result<Option<String>, AwsError> {
        *self.status.lock().unwrap() = None;
        Ok(None)
    }
    async fn cancel_update_stack(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        token: &str,
    ) -> Result<Option<String>, AwsError> {
        self.cancels.lock().unwrap().push(token.to_owned());
        *self.status.lock().unwrap() = Some("UPDATE_ROLLBACK_COMPLETE".into());
        Ok(None)
    }
    async fn stack_events(
        &self,
        _: &TemporaryCredentials,
        _: &str,
        _: usize,
    ) -> Result<Vec<StackEvent>, AwsError> {
        Ok(Vec::new())
    }
    async fn stack_resources(
        &self,
        _: &TemporaryCredentials,
        _: &str,
    ) -> Result<Vec<StackResource>, AwsError> {
        Ok(Vec::new())
    }
}

fn apply_cmd() -> CreateJobCommand {
    CreateJobCommand::parse(
        "acme",
        Some("stack.apply"),
        &json!({"blueprint": "vpc", "name": "app"}),
        Some("operator"),
        None,
    )
    .unwrap()
}

async fn wait_for(r: &Rig, id: &str, done: impl Fn(&JobRecord) -> bool) -> JobRecord {
    for _ in 0..500 {
        let j = r.services.jobs.get(&r.admin, id).await.unwrap();
        if done(&j) {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} did not get there");
}

#[tokio::test]
async fn a_running_stack_update_is_cancelled_through_cloudformation() {
    let r = rig(false).await;
    *r.cfn.status.lock().unwrap() = Some("CREATE_COMPLETE".into());
    let job = r
        .services
        .jobs
        .create(&r.admin, &apply_cmd())
        .await
        .unwrap();
    let pool = run_pool(&r);
    let waiting = wait_for(&r, &job.id, |j| {
        j.steps
            .iter()
            .any(|s| s.name == "wait" && s.state == StepState::Running)
    })
    .await;
    assert_eq!(waiting.result.as_ref().unwrap()["operation"], "update");
    let cancelling = r.services.jobs.cancel(&r.admin, &job.id).await.unwrap();
    assert_eq!(cancelling.state, JobState::Cancelling);
    // Asking again changes nothing.
    let again = r.services.jobs.cancel(&r.admin, &job.id).await.unwrap();
    assert_eq!(again.state, JobState::Cancelling);
    let done = wait_final(&r, &job.id).await;
    pool.abort();
    assert_eq!(done.state, JobState::Cancelled, "{done:?}");
    assert_eq!(
        r.cfn.cancels.lock().unwrap().as_slice(),
        [format!("rolegate-{}-cancel", job.id)]
    );
    assert_eq!(done.result.unwrap()["status"], "UPDATE_ROLLBACK_COMPLETE");
    assert_eq!(
        done.steps.last().unwrap().state,
        StepState::Skipped,
        "require_imdsv2 did not run"
    );
    for prefix in ["jobq/", "joblease/", "joblock/"] {
        assert!(
            r.store
                .list(prefix, None, 10)
                .await
                .unwrap()
                .items
                .is_empty(),
            "{prefix}"
        );
    }
}

#[tokio::test]
async fn a_stack_create_that_called_aws_is_not_cancellable() {
    let r = rig(false).await;
    let settings = JobSettings {
        workers: 1,
        poll: Duration::from_millis(10),
        test_step_delay: Some(Duration::from_millis(400)),
        ..JobSettings::default()
    };
    let jobs = r.services.jobs.clone().with_clients(
        crate::ports::aws::JobClients {
            cloudformation: r.cfn.clone(),
            ..crate::ports::aws::JobClients::none()
        },
        settings,
    );
    let job = jobs.create(&r.admin, &apply_cmd()).await.unwrap();
    let pool = tokio::spawn(jobs.clone().run_workers(Arc::new(NoObserver)));
    wait_for(&r, &job.id, |j| j.called_aws).await;
    let refused = jobs.cancel(&r.admin, &job.id).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotCancellable);
    let done = wait_final(&r, &job.id).await;
    pool.abort();
    assert_eq!(done.state, JobState::Succeeded, "{done:?}");
    assert_eq!(done.result.unwrap()["operation"], "create");
}
