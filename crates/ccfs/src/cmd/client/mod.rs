//! `ccfs client …`: the command-line face of the `ccfs-client` SDK.
//!
//! - [`args`] — the flags and subcommands.
//! - this file — building the SDK client from the flags, and `generate`, `status`, `download`,
//!   `fetch`.
//! - [`receive`] — the callback receiver behind `receive` and `fetch --callback-listen`.
//! - [`output`] — text or JSON results on stdout, download progress bars on stderr, unzipping.
//!
//! These commands need no local configuration or data directory: they talk to a server over
//! the network, like a developer's integration on another machine.

pub mod args;
mod output;
mod receive;
mod window;

use std::sync::Arc;

use anyhow::{bail, Context};
use ccfs_client::{CallbackVerifier, Client, Downloaded};
use ccfs_protocol::messages::{GenerateBody, StatusData};
use ccfs_protocol::{ResponseId, ZipFileName};
use serde::Serialize;

use self::args::{
    ClientArgs, ClientCommand, ConnArgs, DownloadArgs, FetchArgs, GenerateArgs, OutArgs,
    ReceiveArgs, StatusArgs, WindowArgs, PLACEHOLDER_CALLBACK,
};
use self::output::Out;

/// Runs a `ccfs client` subcommand.
pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let conn = args.conn;
    let out = Out::new(conn.json);
    match args.command {
        ClientCommand::Generate(a) => generate(&conn, &out, a).await,
        ClientCommand::Status(a) => status(&conn, &out, a).await,
        ClientCommand::Download(a) => download(&conn, &out, a).await,
        ClientCommand::Fetch(a) => fetch(&conn, &out, a).await,
        ClientCommand::Receive(a) => receive_files(&conn, &out, a).await,
    }
}

/// The AK and SK, from the flags or the environment.
fn credentials(conn: &ConnArgs) -> anyhow::Result<(String, String)> {
    match (&conn.ak, &conn.sk) {
        (Some(ak), Some(sk)) if !ak.is_empty() && !sk.is_empty() => Ok((ak.clone(), sk.clone())),
        _ => bail!("credentials are needed: --ak and --sk, or CCFS_AK and CCFS_SK"),
    }
}

/// The SDK client the flags describe.
fn client(conn: &ConnArgs) -> anyhow::Result<Client> {
    let (ak, sk) = credentials(conn)?;
    let mut builder = Client::builder(conn.server.clone())
        .credentials(ak, sk)
        .insecure(conn.insecure)
        .signed_headers(if conn.sign_host_only {
            ccfs_client::SignedHeaders::HostOnly
        } else {
            ccfs_client::SignedHeaders::ContentAndHost
        });
    if let Some(path) = &conn.ca_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        builder = builder.ca_cert_pem(&pem);
    }
    Ok(builder.build()?)
}

fn generate_body(w: &WindowArgs, callback_url: &str) -> anyhow::Result<GenerateBody> {
    let zone = w.timezone.as_ref();
    Ok(GenerateBody {
        begin_time: w
            .begin
            .to_server(zone)
            .map_err(|e| anyhow::anyhow!("--begin: {e}"))?,
        end_time: w
            .end
            .to_server(zone)
            .map_err(|e| anyhow::anyhow!("--end: {e}"))?,
        account_id: w.account.clone(),
        agent_id: w.agent.clone(),
        callback_url: callback_url.to_owned(),
    })
}

async fn send_generate(
    client: &Client,
    body: &GenerateBody,
    key: Option<&str>,
) -> anyhow::Result<ResponseId> {
    let id = match key {
        Some(k) => client.generate_idempotent(body, k).await,
        None => client.generate(body).await,
    };
    id.context("generate")
}

/// What `generate` prints without `--wait`.
#[derive(Serialize)]
struct Generated<'a> {
    #[serde(rename = "responseId")]
    response_id: &'a str,
    #[serde(rename = "callBackURL")]
    callback_url: &'a str,
}

async fn generate(conn: &ConnArgs, out: &Out, a: GenerateArgs) -> anyhow::Result<()> {
    let client = client(conn)?;
    let url = a.callback_url.as_deref().unwrap_or(PLACEHOLDER_CALLBACK);
    let id = send_generate(
        &client,
        &generate_body(&a.window, url)?,
        a.idempotency_key.as_deref(),
    )
    .await?;
    if !a.wait {
        return out.emit(
            &Generated {
                response_id: id.as_str(),
                callback_url: url,
            },
            || format!("responseId: {id}\nthe file will be announced at {url}"),
        );
    }
    out.note(&format!("responseId: {id}; waiting for the export"));
    let done = wait(&client, &id, &a.wait_args).await?;
    out.status(&done)?;
    out.warn_if_empty(done.record_count);
    if a.callback_url.is_none() {
        out.note(&format!(
            "next: ccfs client download {} (until then the server keeps retrying the \
             placeholder callBackURL)",
            done.agent_opr_info_file_name
        ));
    }
    Ok(())
}

async fn wait(client: &Client, id: &ResponseId, w: &args::WaitArgs) -> anyhow::Result<StatusData> {
    let spinner = output::spinner(format!("waiting for {id}"));
    let result = client.wait(id, w.poll(), w.timeout()).await;
    spinner.finish_and_clear();
    Ok(result?)
}

async fn status(conn: &ConnArgs, out: &Out, a: StatusArgs) -> anyhow::Result<()> {
    let id = ResponseId::parse(&a.response_id).with_context(|| {
        format!(
            "'{}' is not a responseId (32 lower-case hex characters)",
            a.response_id
        )
    })?;
    let status = client(conn)?.status(&id).await.context("status")?;
    out.status(&status)
}

fn file_name(s: &str) -> anyhow::Result<ZipFileName> {
    ZipFileName::parse(s)
        .with_context(|| format!("'{s}' is not an export file name (yyyyMMdd_<32 hex>.zip)"))
}

/// Downloads `name` into the output directory (and unzips it when asked).
async fn fetch_file(
    client: &Client,
    out_args: &OutArgs,
    name: &ZipFileName,
) -> anyhow::Result<(Downloaded, Vec<String>)> {
    tokio::fs::create_dir_all(&out_args.dir)
        .await
        .with_context(|| format!("cannot create {}", out_args.dir.display()))?;
    let dest = out_args.dir.join(name.as_str());
    let bar = output::download_bar(name.as_str());
    let result = client
        .download(name, &dest, |p| {
            if let Some(total) = p.total {
                bar.set_length(total);
            }
            bar.set_position(p.done);
        })
        .await;
    bar.finish_and_clear();
    let got = result.with_context(|| format!("download {name}"))?;
    let extracted = if out_args.extract {
        output::extract(&got.path).await?
    } else {
        Vec::new()
    };
    Ok((got, extracted))
}

async fn download(conn: &ConnArgs, out: &Out, a: DownloadArgs) -> anyhow::Result<()> {
    let name = file_name(&a.file_name)?;
    let client = client(conn)?;
    let (got, extracted) = fetch_file(&client, &a.out, &name).await?;
    out.downloaded(&name, None, None, &got, &extracted)
}

async fn fetch(conn: &ConnArgs, out: &Out, a: FetchArgs) -> anyhow::Result<()> {
    let client = client(conn)?;
    let (name, id, expected, records) = match a.callback_listen {
        None => {
            let url = a.callback_url.as_deref().unwrap_or(PLACEHOLDER_CALLBACK);
            let id = send_generate(
                &client,
                &generate_body(&a.window, url)?,
                a.idempotency_key.as_deref(),
            )
            .await?;
            out.note(&format!("responseId: {id}; polling for the file"));
            let done = wait(&client, &id, &a.wait_args).await?;
            let name = file_name(&done.agent_opr_info_file_name)?;
            (name, id, done.sha256, done.record_count)
        }
        Some(listen) => {
            let (ak, sk) = credentials(conn)?;
            let verifier = Arc::new(CallbackVerifier::new(ak, sk));
            let mut receiver = receive::Receiver::start(listen, &a.tls, verifier, *out).await?;
            let url = a
                .callback_url
                .clone()
                .unwrap_or_else(|| receiver.url("/ccfs/callback"));
            let id = send_generate(
                &client,
                &generate_body(&a.window, &url)?,
                a.idempotency_key.as_deref(),
            )
            .await?;
            out.note(&format!(
                "responseId: {id}; waiting for the callback at {url}"
            ));
            let spinner = output::spinner(format!("waiting for the callback of {id}"));
            let announced = tokio::time::timeout(a.wait_args.timeout(), async {
                loop {
                    match receiver.next().await {
                        Some(cb) if cb.response_id == id.as_str() => return Some(cb),
                        Some(_) => continue,
                        None => return None,
                    }
                }
            })
            .await;
            spinner.finish_and_clear();
            receiver.stop().await;
            let cb = match announced {
                Ok(Some(cb)) => cb,
                Ok(None) => bail!("the callback receiver stopped"),
                Err(_) => bail!(
                    "no callback for {id} within {} s (is {url} reachable from the server?)",
                    a.wait_args.timeout
                ),
            };
            // The callback carries no count; the status extension knows it (a server without
            // the extension just leaves it out).
            let records = client.status(&id).await.ok().and_then(|s| s.record_count);
            (file_name(&cb.agent_opr_info_file_name)?, id, None, records)
        }
    };
    let (got, extracted) = fetch_file(&client, &a.out, &name).await?;
    if let Some(expected) = expected {
        if !expected.eq_ignore_ascii_case(&got.sha256) {
            let _ = tokio::fs::remove_file(&got.path).await;
            bail!(
                "{name}: the status announced SHA-256 {expected}, the file has {}",
                got.sha256
            );
        }
    }
    out.downloaded(&name, Some(&id), records, &got, &extracted)?;
    out.warn_if_empty(records);
    Ok(())
}

async fn receive_files(conn: &ConnArgs, out: &Out, a: ReceiveArgs) -> anyhow::Result<()> {
    let client = client(conn)?;
    let (ak, sk) = credentials(conn)?;
    let verifier = Arc::new(CallbackVerifier::new(ak, sk));
    let mut receiver = receive::Receiver::start(a.listen, &a.tls, verifier, *out).await?;
    let url = receiver.url("/");
    out.emit(
        &serde_json::json!({"event": "listening", "url": url}),
        || format!("receiving callbacks at {url} (Ctrl-C to stop)"),
    )?;
    let mut seen = std::collections::HashSet::new();
    let outcome = loop {
        let cb = tokio::select! {
            cb = receiver.next() => cb,
            _ = crate::signal::shutdown() => break Ok(()),
        };
        let Some(cb) = cb else {
            break Err(anyhow::anyhow!("the callback receiver stopped"));
        };
        // A server retries a callback whose answer got lost: one download per file.
        if !seen.insert(cb.agent_opr_info_file_name.clone()) {
            continue;
        }
        let name = match file_name(&cb.agent_opr_info_file_name) {
            Ok(n) => n,
            Err(e) => {
                out.failed(&cb.agent_opr_info_file_name, &e);
                continue;
            }
        };
        let id = name.response_id();
        match fetch_file(&client, &a.out, &name).await {
            Ok((got, extracted)) => {
                let records = client.status(&id).await.ok().and_then(|s| s.record_count);
                out.downloaded(&name, Some(&id), records, &got, &extracted)?;
                out.warn_if_empty(records);
                if a.once {
                    break Ok(());
                }
            }
            Err(e) => {
                if a.once {
                    break Err(e);
                }
                out.failed(name.as_str(), &e);
                seen.remove(name.as_str());
            }
        }
    };
    receiver.stop().await;
    outcome
}
