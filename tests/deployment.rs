//! The deployment files at the root of the repository, checked without a Docker engine:
//!
//! - `docker-compose.yml`, resolved by Debian's `docker-compose` with the variables of
//!   `.env.example`, configures the switchyard service; the test runs the real binary with
//!   exactly the Dockerfile's entrypoint and environment and the service's command and
//!   environment, and checks that each setting took effect (tokens required, STUN and TURN
//!   with credentials in `joined`, the public address and media port in the candidates, the
//!   origins allowed to open the signaling socket, no cap per address behind the proxy, the
//!   graceful shutdown).
//! - `deploy/Caddyfile`, run by Debian's `caddy` in front of the binary, gives a working HTTPS
//!   origin: the page, the signaling WebSocket through it, and `/metrics` kept off the internet.
//! - The profile `monitoring` of the compose file: Prometheus scrapes the address the service
//!   serves `/metrics` on, and Grafana gets that Prometheus as a data source and the dashboard
//!   of `deploy/grafana/` (whose queries `tests/dashboard.rs` checks against `/metrics`).
//!
//! Both need the tools installed (`scripts/test.sh` installs them).

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::process::{ServerProcess, free_port};
use common::{PATIENCE, camera_and_microphone, free_udp_port};
use futures::{SinkExt, StreamExt};
use loadtest::signaling::{self, Received};
use loadtest::{Participant, ParticipantOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use switchyard::signal::protocol::{ClientMessage, ErrorCode, ServerMessage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as TungsteniteError, Message};
use yaml_rust2::{Yaml, YamlLoader};

/// The public address the test announces: TEST-NET-1, reserved for documentation.
const PUBLIC_IP: &str = "192.0.2.10";

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The path of `tool`, or a failure that says how to get it.
fn require(tool: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|directory| directory.join(tool))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("`{tool}` is missing: install Debian's {package} (scripts/test.sh does)")
        })
}

/// What the Dockerfile's runtime stage runs.
#[derive(Debug)]
struct Image {
    /// `ENTRYPOINT`, exec form.
    entrypoint: Vec<String>,
    /// `ENV` of the runtime stage, in order.
    env: Vec<(String, String)>,
}

/// Reads the Dockerfile, checking that the runtime stage's entrypoint is the binary that the
/// build stage builds with `cargo build --release --bin switchyard`.
fn read_dockerfile() -> Image {
    let text = std::fs::read_to_string(repository().join("Dockerfile")).expect("a Dockerfile");
    let joined = text.replace("\\\n", " ");
    let instructions: Vec<(String, String)> = joined
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
            (keyword.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect();
    let stages: Vec<usize> = instructions
        .iter()
        .enumerate()
        .filter(|(_, (keyword, _))| keyword == "FROM")
        .map(|(index, _)| index)
        .collect();
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = instructions.split_at(stages[1]);
    let build_stage = build[0]
        .1
        .rsplit(' ')
        .next()
        .expect("the build stage's name");
    assert!(
        build.iter().any(|(keyword, rest)| keyword == "RUN"
            && rest.contains("cargo build")
            && rest.contains("--release")
            && rest.contains("--bin switchyard")),
        "the build stage builds the switchyard binary"
    );
    let copied = runtime
        .iter()
        .find_map(|(keyword, rest)| {
            let rest = rest.strip_prefix(&format!("--from={build_stage} "))?;
            (keyword == "COPY").then(|| rest.split_whitespace().collect::<Vec<_>>())
        })
        .expect("the runtime stage copies from the build stage");
    assert!(
        copied[0].ends_with("target/release/switchyard"),
        "{copied:?}"
    );
    let entrypoint: Vec<String> = runtime
        .iter()
        .find(|(keyword, _)| keyword == "ENTRYPOINT")
        .map(|(_, rest)| serde_json::from_str(rest).expect("ENTRYPOINT in exec form"))
        .expect("an ENTRYPOINT");
    assert_eq!(
        entrypoint.first().map(String::as_str),
        Some(copied[1]),
        "the entrypoint is the binary the build made"
    );
    let env = runtime
        .iter()
        .filter(|(keyword, _)| keyword == "ENV")
        .map(|(_, rest)| {
            let (key, value) = rest.split_once('=').expect("ENV KEY=value");
            (key.to_owned(), value.trim_matches('"').to_owned())
        })
        .collect();
    let user = runtime.iter().rfind(|(keyword, _)| keyword == "USER");
    assert!(
        user.is_some_and(|(_, name)| name != "root" && name != "0"),
        "the image runs as a user of its own"
    );
    Image { entrypoint, env }
}

/// `docker-compose config`: the compose file with `.env.example`'s variables and `variables`
/// (which win, as the shell's do) substituted, as Docker would run it, with `profiles` on.
fn compose_config(profiles: &[&str], variables: &[(&str, String)]) -> Yaml {
    let compose = require("docker-compose", "docker-compose");
    let root = repository();
    let output = Command::new(compose)
        .current_dir(&root)
        .args(["--env-file", ".env.example", "--file", "docker-compose.yml"])
        .args(profiles.iter().flat_map(|profile| ["--profile", profile]))
        .args(["--project-name", "switchyard-test", "config"])
        .envs(variables.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .output()
        .expect("docker-compose runs");
    assert!(
        output.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    YamlLoader::load_from_str(&text)
        .expect("docker-compose prints YAML")
        .remove(0)
}

fn strings(yaml: &Yaml) -> Vec<String> {
    match yaml {
        Yaml::BadValue | Yaml::Null => Vec::new(),
        Yaml::String(text) => text.split_whitespace().map(str::to_owned).collect(),
        Yaml::Array(items) => items
            .iter()
            .map(|item| item.as_str().expect("a string").to_owned())
            .collect(),
        other => panic!("not a command: {other:?}"),
    }
}

fn scalar(yaml: &Yaml) -> String {
    match yaml {
        Yaml::String(text) => text.clone(),
        Yaml::Integer(number) => number.to_string(),
        Yaml::Boolean(flag) => flag.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// Runs the binary with `args` and `env` to completion and returns what it printed on
/// standard output.
fn run_to_end(args: &[&str], env: &[(String, String)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "switchyard {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_service_runs_the_binary_with_its_settings_in_effect() {
    let image = read_dockerfile();
    let media_port = free_udp_port();
    let variables = [
        ("DOMAIN", "localhost".to_owned()),
        ("TURN_DOMAIN", "turn.localhost".to_owned()),
        ("PUBLIC_IP", PUBLIC_IP.to_owned()),
        ("TOKEN_KEY", format!("{:032x}", rand::random::<u128>())),
        ("TURN_SECRET", format!("{:032x}", rand::random::<u128>())),
        ("MEDIA_UDP_PORT", media_port.to_string()),
        ("MEDIA_TCP_PORT", free_port().to_string()),
    ];
    let config = compose_config(&[], &variables);
    let service = &config["services"]["switchyard"];
    assert_eq!(service["network_mode"].as_str(), Some("host"));
    assert!(
        service["entrypoint"].is_badvalue(),
        "the image's entrypoint is kept"
    );
    let build = service["build"]["context"]
        .as_str()
        .expect("built from the repository");
    assert_eq!(
        Path::new(build).canonicalize().ok(),
        repository().canonicalize().ok()
    );

    // The argument list and environment Docker would give the process: the image's, then the
    // service's. Only the listening port is the test's own, so it cannot collide.
    let mut args: Vec<String> = image.entrypoint[1..].to_vec();
    args.extend(strings(&service["command"]));
    let mut env: BTreeMap<String, String> = image.env.into_iter().collect();
    for (key, value) in service["environment"].as_hash().expect("an environment") {
        env.insert(scalar(key), scalar(value));
    }
    let listen: SocketAddr = env["SWITCHYARD_HTTP_LISTEN"].parse().expect("an address");
    assert_eq!(
        listen.ip(),
        IpAddr::from([127, 0, 0, 1]),
        "reachable through Caddy only"
    );
    let address = SocketAddr::new(listen.ip(), free_port());
    env.insert("SWITCHYARD_HTTP_LISTEN".to_owned(), address.to_string());
    let internal: SocketAddr = env["SWITCHYARD_HTTP_INTERNAL_LISTEN"]
        .parse()
        .expect("an address");
    assert_eq!(
        internal.ip(),
        IpAddr::from([127, 0, 0, 1]),
        "/metrics and the API stay on the host"
    );
    let internal = SocketAddr::new(internal.ip(), free_port());
    env.insert(
        "SWITCHYARD_HTTP_INTERNAL_LISTEN".to_owned(),
        internal.to_string(),
    );

    // Every variable names a configuration key (the server ignores names it does not know, so
    // a misspelt one would go unnoticed).
    let help = run_to_end(&["--help"], &[]);
    let words: std::collections::HashSet<&str> = help
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    for key in env.keys() {
        assert!(
            key.starts_with("SWITCHYARD_") && words.contains(key.as_str()),
            "{key} is not a configuration key of `switchyard --help`"
        );
    }

    let env: Vec<(String, String)> = env.into_iter().collect();
    let mut server = ServerProcess::start(address, &args, &env).await;
    let url = server.websocket_url();

    // auth.token_key: a join without a token is refused.
    let (mut sender, mut receiver) = signaling::connect(&url).await.expect("the socket opens");
    sender
        .send(&ClientMessage::Join {
            room: "deploy".into(),
            name: "nobody".into(),
            token: None,
        })
        .await
        .expect("sent");
    let refusal = tokio::time::timeout(PATIENCE, receiver.next())
        .await
        .expect("an answer");
    assert!(
        matches!(
            refusal,
            Some(Received::Message(ServerMessage::Error {
                code: ErrorCode::TokenMissing,
                ..
            }))
        ),
        "{refusal:?}"
    );
    sender.close().await;

    // http.allowed_origins: the site's own pages may open the signaling socket, others not.
    for (origin, allowed) in [
        ("https://localhost", true),
        ("https://elsewhere.example", false),
    ] {
        let mut request = url.as_str().into_client_request().expect("a request");
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("a header value"));
        match tokio_tungstenite::connect_async(request).await {
            Ok((mut socket, _)) if allowed => {
                let _ = socket.close(None).await;
            }
            Err(TungsteniteError::Http(response)) if !allowed => {
                assert_eq!(response.status(), 403, "{origin}");
            }
            other => panic!("{origin}: {:?}", other.map(|_| "a socket")),
        }
    }
    // limits.connections_per_ip: off behind Caddy, whose one address every connection has.
    assert!(
        server.output().contains("per_ip=None"),
        "no cap per address:\n{}",
        server.output()
    );

    // http.internal_listen: /metrics there, and not on the address Caddy passes requests to.
    let (status, body) = common::http::get(internal, "/metrics")
        .await
        .expect("GET /metrics on the internal address");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("switchyard_rooms"), "{body}");
    let (status, _) = common::http::get(address, "/metrics")
        .await
        .expect("GET /metrics on the public address");
    assert_eq!(
        status, 404,
        "/metrics is not served where Caddy sends requests"
    );

    // `docker compose run --rm switchyard token ...` mints with the service's environment.
    let mut token_env = env.clone();
    token_env.push(("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()));
    let token = run_to_end(
        &["token", "--room", "deploy", "--identity", "ada"],
        &token_env,
    );
    let ada = Participant::join(
        ParticipantOptions::new(&url, "deploy", "Ada")
            .with_tracks(camera_and_microphone())
            .with_token(token.trim()),
    )
    .await
    .expect("a participant with a token joins");

    // ice.urls, ice.turn_urls and ice.turn_secret: STUN, and TURN with credentials.
    let observed = ada.observed();
    let Some(ServerMessage::Joined { ice_servers, .. }) = observed.messages.first() else {
        panic!("`joined` first: {:?}", observed.messages.first());
    };
    assert!(
        ice_servers
            .iter()
            .any(|server| server.urls == ["stun:localhost:3478"]),
        "{ice_servers:?}"
    );
    assert!(
        ice_servers.iter().any(|server| {
            server
                .urls
                .contains(&"turn:localhost:3478?transport=udp".to_owned())
                && server
                    .urls
                    .contains(&"turn:localhost:3478?transport=tcp".to_owned())
                && server
                    .urls
                    .contains(&"turns:turn.localhost:443?transport=tcp".to_owned())
                && server
                    .username
                    .as_deref()
                    .is_some_and(|name| name.ends_with(":ada"))
                && server.credential.is_some()
        }),
        "{ice_servers:?}"
    );

    // media.public_ips and media.udp_port: the server's candidates announce the public
    // address, on the media port.
    let announces = |observed: &loadtest::Observed| {
        observed.messages.iter().any(|message| match message {
            ServerMessage::Offer { sdp } | ServerMessage::Answer { sdp } => {
                sdp.lines().any(|line| {
                    let fields: Vec<&str> = line.split(' ').collect();
                    line.starts_with("a=candidate:")
                        && fields.get(4) == Some(&PUBLIC_IP)
                        && fields.get(5) == Some(&media_port.to_string().as_str())
                })
            }
            _ => false,
        })
    };
    ada.wait_until("a candidate on the public address", PATIENCE, announces)
        .await
        .unwrap_or_else(|error| panic!("{error}: {:#?}", ada.observed().messages));

    // docker stop: SIGTERM, and the process is gone well before docker's SIGKILL.
    let signalled = Instant::now();
    server.terminate();
    let status = server.wait_for_exit(Duration::from_secs(5)).await;
    let output = server.output();
    let status = status
        .unwrap_or_else(|| panic!("running {:?} after SIGTERM:\n{output}", signalled.elapsed()));
    assert!(status.success(), "{status}:\n{output}");
    assert!(!output.contains("panicked"), "{output}");
    ada.vanish().await;
}

/// The value of the flag `--name=VALUE` in a command, if it is there.
fn flag_value<'a>(command: &'a [String], name: &str) -> Option<&'a str> {
    command
        .iter()
        .find_map(|arg| arg.strip_prefix(&format!("--{name}=")))
}

/// Where the volume `volume` is mounted in `service`, and whether read-only.
fn mount(service: &Yaml, volume: &str) -> Option<(String, bool)> {
    strings(&service["volumes"]).into_iter().find_map(|entry| {
        let mut parts = entry.split(':');
        (parts.next() == Some(volume)).then(|| {
            let target = parts.next().unwrap_or_default().to_owned();
            (target, parts.next() == Some("ro"))
        })
    })
}

#[test]
fn turn_over_tls_on_443_goes_through_caddy_to_coturn_with_caddys_certificate() {
    let turn_domain = "turn.example.net";
    let variables = [
        ("TURN_DOMAIN", turn_domain.to_owned()),
        ("TOKEN_KEY", "k".repeat(32)),
        ("TURN_SECRET", "s".repeat(32)),
    ];
    let config = compose_config(&[], &variables);
    let caddy = &config["services"]["caddy"];
    let coturn = &config["services"]["coturn"];

    // Caddy runs deploy/turns.Caddyfile, which imports the site's Caddyfile beside it.
    let caddy_command = strings(&caddy["command"]);
    let at = caddy_command
        .iter()
        .position(|arg| arg == "--config")
        .expect("caddy runs a --config");
    let config_file = &caddy_command[at + 1];
    let mounted = |source: &str, target: &str| files_mounted(caddy, source, target);
    let files = strings(&caddy["volumes"]);
    assert!(mounted("deploy/turns.Caddyfile", config_file), "{files:?}");
    let turns_caddyfile = std::fs::read_to_string(repository().join("deploy/turns.Caddyfile"))
        .expect("deploy/turns.Caddyfile");
    assert!(turns_caddyfile.contains("\nimport Caddyfile\n"));
    let site = Path::new(config_file).with_file_name("Caddyfile");
    assert!(
        mounted("deploy/Caddyfile", &site.to_string_lossy()),
        "{files:?}"
    );
    assert_eq!(
        caddy["build"]["context"]
            .as_str()
            .and_then(|path| Path::new(path).canonicalize().ok()),
        repository().join("deploy/caddy").canonicalize().ok(),
        "Caddy is built with its layer4 app"
    );

    // TLS for TURN_DOMAIN goes to coturn's TLS port, which coturn listens on.
    assert!(
        turns_caddyfile.contains("@turn tls sni {$TURN_DOMAIN}")
            && turns_caddyfile.contains("proxy 127.0.0.1:{$TURN_TLS_PORT:5349}"),
        "{turns_caddyfile}"
    );
    assert_eq!(scalar(&caddy["environment"]["TURN_DOMAIN"]), turn_domain);
    let coturn_command = strings(&coturn["command"]);
    assert_eq!(
        flag_value(&coturn_command, "tls-listening-port"),
        Some(scalar(&caddy["environment"]["TURN_TLS_PORT"]).as_str()),
        "{coturn_command:?}"
    );
    assert!(!coturn_command.iter().any(|arg| arg == "--no-tls"));

    // coturn serves the certificate Caddy obtains for TURN_DOMAIN, from Caddy's storage,
    // mounted read-only.
    let (caddy_storage, read_only) = mount(caddy, "caddy_data").expect("Caddy's storage");
    assert!(!read_only);
    assert_eq!(
        caddy_storage, "/data",
        "the caddy image keeps its storage in /data"
    );
    let (shared, read_only) = mount(coturn, "caddy_data").expect("coturn mounts Caddy's storage");
    assert!(read_only, "coturn cannot write Caddy's storage");
    let directory =
        format!("{shared}/caddy/certificates/acme-v02.api.letsencrypt.org-directory/{turn_domain}");
    assert_eq!(
        scalar(&coturn["environment"]["TURN_TLS_CERT"]),
        format!("{directory}/{turn_domain}.crt")
    );
    assert_eq!(
        scalar(&coturn["environment"]["TURN_TLS_KEY"]),
        format!("{directory}/{turn_domain}.key")
    );
    assert!(
        turns_caddyfile.contains("issuer acme"),
        "one issuer (Let's Encrypt), so the certificate's path is known"
    );
    // Its entrypoint is deploy/coturn.sh, which passes them on to turnserver.
    assert_eq!(
        strings(&coturn["entrypoint"]).last().map(String::as_str),
        Some("/usr/local/bin/coturn.sh")
    );
    assert!(
        files_mounted(coturn, "deploy/coturn.sh", "/usr/local/bin/coturn.sh"),
        "{:?}",
        strings(&coturn["volumes"])
    );
    assert_eq!(strings(&coturn["cap_drop"]), ["ALL"]);
}

/// Whether `service` mounts the repository's `source` at `target`.
fn files_mounted(service: &Yaml, source: &str, target: &str) -> bool {
    strings(&service["volumes"]).iter().any(|entry| {
        let mut parts = entry.split(':');
        parts.next().is_some_and(|path| {
            Path::new(path).canonicalize().ok() == repository().join(source).canonicalize().ok()
        }) && parts.next() == Some(target)
    })
}

/// Reads a whole HTTP/1.1 response from `stream` after sending a GET for `path`.
async fn https_get<S>(stream: &mut S, path: &str) -> (u16, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    common::http::parse_response(&response).expect("an HTTP response")
}

/// Caddy with the repository's Caddyfile, on test ports, its certificates in `storage`.
struct Caddy {
    child: std::process::Child,
    https_port: u16,
}

impl Drop for Caddy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Caddy {
    fn start(storage: &Path, upstream: SocketAddr) -> Self {
        let caddy = require("caddy", "caddy");
        let https_port = free_port();
        let http_port = free_port();
        // Only what a test needs on top of the real file: its own ports and storage, no admin
        // endpoint, and no attempt to install its local authority in the system's trust store.
        let wrapper = storage.join("Caddyfile");
        std::fs::write(
            &wrapper,
            format!(
                "{{\n\tadmin off\n\thttp_port {http_port}\n\thttps_port {https_port}\n\t\
                 skip_install_trust\n\tstorage file_system {}\n}}\n\nimport {}\n",
                storage.join("data").display(),
                repository().join("deploy/Caddyfile").display()
            ),
        )
        .expect("the wrapper is written");
        let child = Command::new(caddy)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&wrapper)
            // `localhost` gets a certificate from Caddy's own local authority: no ACME.
            .env("DOMAIN", "localhost")
            .env("SWITCHYARD_UPSTREAM", upstream.to_string())
            .env("HOME", storage)
            .env("XDG_DATA_HOME", storage.join("xdg-data"))
            .env("XDG_CONFIG_HOME", storage.join("xdg-config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("caddy starts");
        Self { child, https_port }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_serves_the_client_and_the_websocket_over_https() {
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let args = [
        "--http".to_owned(),
        address.to_string(),
        "--media-ip".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    let _server = ServerProcess::start(address, &args, &[]).await;
    let storage = std::env::temp_dir().join(format!(
        "switchyard-caddy-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&storage).expect("a storage directory");
    let caddy = Caddy::start(&storage, address);

    // Caddy makes its local authority and the certificate for `localhost` as it starts.
    let root_file = storage.join("data/pki/authorities/local/root.crt");
    let deadline = Instant::now() + PATIENCE;
    let connector = loop {
        if let Ok(root) = CertificateDer::from_pem_file(&root_file) {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(root).expect("Caddy's root certificate");
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            break TlsConnector::from(Arc::new(config));
        }
        assert!(Instant::now() < deadline, "Caddy made no local authority");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let https = SocketAddr::from(([127, 0, 0, 1], caddy.https_port));
    let connect = || async {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(tcp) = TcpStream::connect(https).await {
                let name = ServerName::try_from("localhost").expect("a name");
                if let Ok(stream) = connector.connect(name, tcp).await {
                    return stream;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Caddy serves no HTTPS on {https}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let (status, page) = https_get(&mut connect().await, "/").await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>"), "the client page: {page}");
    assert_eq!(
        https_get(&mut connect().await, "/healthz").await,
        (200, "ok\n".to_owned())
    );
    for internal in ["/metrics", "/api/counts"] {
        let (status, _) = https_get(&mut connect().await, internal).await;
        assert_eq!(status, 404, "{internal} is not served to the internet");
    }

    // The signaling WebSocket through Caddy: join, and hear one's own chat message back.
    let url = format!("wss://localhost:{}/ws", caddy.https_port);
    let (mut socket, _) = tokio_tungstenite::client_async(url, connect().await)
        .await
        .expect("the WebSocket upgrade through Caddy");
    for message in [
        r#"{"type": "join", "room": "proxied", "name": "Ada"}"#,
        r#"{"type": "chat", "text": "through Caddy"}"#,
    ] {
        socket
            .send(Message::Text(message.into()))
            .await
            .expect("sent");
    }
    let mut joined = false;
    loop {
        let frame = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("the server answers in time")
            .expect("the socket is open")
            .expect("a frame");
        let Message::Text(text) = frame else { continue };
        match serde_json::from_str::<ServerMessage>(&text).expect("a server message") {
            ServerMessage::Joined { .. } => joined = true,
            ServerMessage::Chat { text, .. } if text == "through Caddy" => break,
            _ => {}
        }
    }
    assert!(joined);
    let _ = socket.close(None).await;
    drop(caddy);
    let _ = std::fs::remove_dir_all(&storage);
}

/// A bind mount of `service`: the host path (resolved by docker-compose) mounted at `target`.
fn bind_mount(service: &Yaml, target: &str) -> PathBuf {
    service["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .find_map(|volume| {
            let mut parts = volume.split(':');
            let (source, mounted) = (parts.next()?, parts.next()?);
            (mounted == target).then(|| PathBuf::from(source))
        })
        .unwrap_or_else(|| panic!("nothing is mounted at {target}: {:?}", service["volumes"]))
}

fn read_yaml(path: &Path) -> Yaml {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .remove(0)
}

/// The value of `--name=value` in a service's command.
fn flag(service: &Yaml, name: &str) -> String {
    let prefix = format!("--{name}=");
    strings(&service["command"])
        .iter()
        .find_map(|argument| argument.strip_prefix(&prefix).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {prefix} in {:?}", service["command"]))
}

#[test]
fn the_monitoring_profile_scrapes_the_internal_address_and_provisions_the_dashboard() {
    let variables = [
        ("TOKEN_KEY", format!("{:032x}", rand::random::<u128>())),
        ("TURN_SECRET", format!("{:032x}", rand::random::<u128>())),
    ];
    let config = compose_config(&["monitoring"], &variables);
    let services = &config["services"];
    for name in ["switchyard", "coturn", "caddy"] {
        assert!(
            services[name]["profiles"].is_badvalue(),
            "{name} runs without a profile"
        );
    }
    for name in ["prometheus", "grafana"] {
        let service = &services[name];
        assert_eq!(
            strings(&service["profiles"]),
            ["monitoring"],
            "{name} runs only with the profile"
        );
        assert_eq!(service["network_mode"].as_str(), Some("host"), "{name}");
    }

    // Prometheus scrapes exactly the address the service serves /metrics on, and only it.
    let internal =
        scalar(&services["switchyard"]["environment"]["SWITCHYARD_HTTP_INTERNAL_LISTEN"]);
    let prometheus = &services["prometheus"];
    let scrape = read_yaml(&bind_mount(prometheus, &flag(prometheus, "config.file")));
    let targets: Vec<String> = scrape["scrape_configs"]
        .as_vec()
        .expect("scrape_configs")
        .iter()
        .flat_map(|job| job["static_configs"].as_vec().cloned().unwrap_or_default())
        .flat_map(|group| strings(&group["targets"]))
        .collect();
    assert_eq!(targets, std::slice::from_ref(&internal), "{scrape:?}");
    let prometheus_listens: SocketAddr = flag(prometheus, "web.listen-address")
        .parse()
        .expect("an address");
    assert!(
        prometheus_listens.ip().is_loopback(),
        "Prometheus stays on the host"
    );

    // Grafana: on the host only, with that Prometheus as the data source the dashboard names.
    let grafana = &services["grafana"];
    let environment = &grafana["environment"];
    assert_eq!(scalar(&environment["GF_SERVER_HTTP_ADDR"]), "127.0.0.1");
    let provisioning = bind_mount(grafana, "/etc/grafana/provisioning");
    let sources = read_yaml(&provisioning.join("datasources/prometheus.yml"));
    let source = &sources["datasources"][0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    assert_eq!(
        source["url"].as_str(),
        Some(format!("http://{prometheus_listens}").as_str())
    );
    let source_uid = source["uid"].as_str().expect("a data source uid");

    // The dashboards provider reads the folder mounted from deploy/grafana/dashboards, which
    // holds the dashboard the home page shows.
    let providers = read_yaml(&provisioning.join("dashboards/switchyard.yml"));
    let folder = providers["providers"][0]["options"]["path"]
        .as_str()
        .expect("a dashboards path");
    let dashboards = bind_mount(grafana, folder);
    assert_eq!(
        dashboards.canonicalize().ok(),
        repository()
            .join("deploy/grafana/dashboards")
            .canonicalize()
            .ok()
    );
    let home = scalar(&environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
    let home = Path::new(&home)
        .strip_prefix(folder)
        .expect("the home dashboard is in the provisioned folder");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dashboards.join(home)).expect("the home dashboard"),
    )
    .expect("JSON");
    let mut uids = Vec::new();
    collect_datasource_uids(&dashboard, &mut uids);
    assert!(!uids.is_empty(), "the dashboard names its data source");
    assert!(
        uids.iter().all(|uid| uid == source_uid),
        "every panel and query uses the provisioned data source {source_uid}: {uids:?}"
    );
}

/// Every `datasource.uid` in a dashboard, at any depth.
fn collect_datasource_uids(value: &serde_json::Value, uids: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, field) in fields {
                if name == "datasource"
                    && let Some(uid) = field.get("uid").and_then(serde_json::Value::as_str)
                {
                    uids.push(uid.to_owned());
                }
                collect_datasource_uids(field, uids);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_datasource_uids(item, uids);
            }
        }
        _ => {}
    }
}
