//! Kill apply at every fail point, run again, and check convergence: exactly one order per
//! certificate, every key present, everything deployed and committed.

use crate::sandbox::{Sandbox, WEB};

const FAIL_POINTS: [&str; 8] = [
    "after-intent",
    "after-key",
    "after-order",
    "after-order-recorded",
    "after-fetch",
    "after-chain",
    "after-deploy",
    "before-commit",
];

fn two_certificates() -> String {
    format!(
        "{WEB}\n[certificate.api]\ncommon_name = \"api.example.test\"\nkey = {{ algorithm = \"rsa\", size = 2048 }}\ndeploy = [{{ kind = \"files\", dir = \"out/api\" }}]\n"
    )
}

#[track_caller]
fn converge(sandbox: &Sandbox) {
    // The killed run left its lock: the next apply takes it over and says so.
    let next = sandbox.apply().expect(0);
    assert!(
        next.stderr
            .contains("took over the state lock of `certform apply`"),
        "{}",
        next.stderr
    );
    sandbox.certform(&["plan", "--detailed-exitcode"]).expect(0);
    let status = sandbox.git("state", &["status", "--porcelain"]);
    assert!(status.trim().is_empty(), "state left uncommitted: {status}");
    for (name, cn, out) in [
        ("web", "www.example.test", "out/web"),
        ("api", "api.example.test", "out/api"),
    ] {
        assert_eq!(sandbox.orders_for(cn), 1, "exactly one order for {name}");
        let key_file = format!("{name}/{}.key", sandbox.state_field(name, "key_id"));
        assert!(
            sandbox.path(&format!("keys/{key_file}")).exists(),
            "key of {name} kept"
        );
        sandbox.verify_deployed(out);
    }
}

#[test]
fn killed_create_converges_at_every_fail_point() {
    for point in FAIL_POINTS {
        let sandbox = Sandbox::with_config(&two_certificates());
        let run = sandbox.certform_env(
            &["apply", "--auto-approve", "--parallelism", "1"],
            &[("CERTFORM_FAILPOINT", point)],
        );
        assert_eq!(
            run.code,
            99,
            "fail point {point} was not reached: {}",
            run.all()
        );
        converge(&sandbox);
    }
}

#[test]
fn killed_renewal_converges_without_a_second_renewal() {
    for point in [
        "after-key",
        "after-order",
        "after-order-recorded",
        "after-fetch",
        // Between the fetched chain and its record, and inside the deploy's switch.
        "after-chain",
        "deploy-staged",
        "deploy-renamed-2",
    ] {
        let sandbox = Sandbox::with_config(WEB);
        sandbox.apply().expect(0);
        let later_time = time::OffsetDateTime::now_utc() + time::Duration::days(75);
        let later = later_time
            .format(&time::format_description::well_known::Rfc3339)
            .expect("time");
        let env_crash = [
            ("CERTFORM_NOW", later.as_str()),
            ("CERTFORM_FAILPOINT", point),
        ];
        let run = sandbox.certform_env(&["apply", "--auto-approve"], &env_crash);
        assert_eq!(run.code, 99, "{point}: {}", run.all());
        let env = [("CERTFORM_NOW", later.as_str())];
        sandbox.certform(&["unlock", "--force"]).expect(0);
        sandbox
            .certform_env(&["apply", "--auto-approve"], &env)
            .expect(0);
        sandbox
            .certform_env(&["plan", "--detailed-exitcode"], &env)
            .expect(0);
        assert_eq!(
            sandbox.orders_for("www.example.test"),
            2,
            "{point}: create + one renewal"
        );
        sandbox.verify_deployed_at("out/web", Some(later_time.unix_timestamp()));
    }
}

#[test]
fn lock_names_its_holder_and_unlock_needs_force() {
    let sandbox = Sandbox::with_config(WEB);
    sandbox.apply().expect(0);
    let run = sandbox.certform(&["unlock"]).expect(1);
    assert!(run.stderr.contains("--force"), "{}", run.stderr);
    sandbox.certform(&["unlock", "--force"]).expect(0);
}
