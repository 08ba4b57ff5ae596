//! The HTTP layer through the CLI: a proxy in the environment (a developer's or CI's
//! `HTTPS_PROXY`) never stands between certform and a CA on loopback.

use crate::pebble::Pebble;
use crate::sandbox::Sandbox;

#[test]
fn a_dead_environment_proxy_does_not_stop_an_acme_apply_on_loopback() {
    let pebble = Pebble::start();
    drop(pebble.take_http_listener());
    // A port nothing listens on: any request sent through this proxy fails.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy = format!("http://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let config = format!(
        "[state]\nrepo = \"state\"\nkeys_dir = \"keys\"\n\n[ca.pebble]\nkind = \"acme\"\ndirectory = \"{}\"\ncontact = [\"ops@example.test\"]\nca_bundle = \"{}\"\n\n[certificate.web]\ncommon_name = \"www.example.test\"\ndcv = {{ method = \"http\", listen = \"127.0.0.1:{}\" }}\ndeploy = [{{ kind = \"files\", dir = \"out/web\" }}]\n",
        pebble.directory_url(),
        pebble.ca_bundle().display(),
        pebble.http_port()
    );
    assert!(
        pebble.directory_url().starts_with("https://127.0.0.1:")
            || pebble.directory_url().starts_with("https://localhost:"),
        "the test needs Pebble on loopback: {}",
        pebble.directory_url()
    );
    let sandbox = Sandbox::with_config(&config);
    let env = [
        ("HTTPS_PROXY", proxy.as_str()),
        ("https_proxy", proxy.as_str()),
        ("HTTP_PROXY", proxy.as_str()),
        ("ALL_PROXY", proxy.as_str()),
    ];
    let run = sandbox
        .certform_env(&["apply", "--auto-approve"], &env)
        .expect(0);
    assert!(run.stdout.contains("create web"), "{}", run.stdout);
    assert!(sandbox.path("out/web/cert.pem").exists());
    sandbox
        .certform_env(&["plan", "--detailed-exitcode"], &env)
        .expect(0);
}
