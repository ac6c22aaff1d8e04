//! The README's commands work as written: the development token command mints a token that
//! the server then admits.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use loadtest::{Participant, ParticipantOptions};
use switchyard::Config;

/// The shell block of the README that holds `needle`, one line per command, comments dropped.
fn readme_block(needle: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    readme
        .split("```sh\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("\n```").map(|(block, _)| block))
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("a shell block in README.md with `{needle}`"))
        .lines()
        .map(|line| line.split(" #").next().unwrap_or(line).trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect()
}

/// A folder holding `cargo`, standing in for `cargo run --release -- ARGS` with the binary
/// these tests were built with (a release build inside a test would take minutes).
fn cargo_stand_in() -> PathBuf {
    let folder = std::env::temp_dir().join(format!("switchyard-readme-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("a folder");
    let script = folder.join("cargo");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1 $2 $3\" = \"run --release --\" ] || exit 99\nshift 3\nexec '{}' \"$@\"\n",
            env!("CARGO_BIN_EXE_switchyard")
        ),
    )
    .expect("the stand-in");
    let mut permissions = std::fs::metadata(&script).expect("metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("executable");
    folder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_development_token_command_works_as_written() {
    let block = readme_block("token --room standup --identity ada");
    // Every command of the block but the server started in the background: the test runs its
    // own server below, with the key the block made.
    let commands: Vec<&String> = block.iter().filter(|line| !line.ends_with('&')).collect();
    assert_eq!(commands.len(), 2, "the key and the token: {block:?}");
    let script = format!(
        "set -e\n{}\necho \"key=$SWITCHYARD_AUTH_TOKEN_KEY\"\n",
        commands
            .iter()
            .map(|line| line.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stand_in = cargo_stand_in();
    let path = format!(
        "{}:{}",
        stand_in.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env_remove("SWITCHYARD_AUTH_TOKEN_KEY")
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .expect("sh runs");
    let _ = std::fs::remove_dir_all(&stand_in);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script}\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    let token = lines.next().expect("the token").to_owned();
    let key = lines
        .next()
        .and_then(|line| line.strip_prefix("key="))
        .expect("the key")
        .to_owned();

    // A server with that key admits ada to standup with the token.
    let mut config = Config::loopback();
    config.auth.token_key = Some(key);
    let server = common::server_with(config).await;
    let ada = Participant::join(
        ParticipantOptions::new(server.websocket_url(), "standup", "guest").with_token(token),
    )
    .await
    .expect("the token admits ada to standup");
    ada.leave().await;
    server.shutdown().await.expect("shut down");
}
