//! Onboarding against real parts: moto (server mode) plays both AWS accounts, the template's
//! own Lambda code runs under python3, and rolegate verifies the signed callback.

use crate::support::{aws_cli, customer_credentials};

#[test]
fn moto_plays_a_separate_customer_account() {
    let (id, secret, token) = customer_credentials("111122223333");
    let out = aws_cli(&["sts", "get-caller-identity", "--output", "json"], Some((&id, &secret, &token)));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["Account"], "111122223333");
}
