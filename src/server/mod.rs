//! Wiring and the listener: builds the protocol layers that serve gRPC, gRPC-web and JSON
//! on one port (HTTP/1.1 and h2c) and binds it (liveness answers at once), opens the store
//! and loads the current state, then opens the gate to the inner stack every protocol
//! shares, and stops cleanly: stop accepting, let in-flight requests finish, close the store.

pub(crate) mod activity;
pub(crate) mod admission;
mod connection;
mod consistency;
mod console;
mod cors;
pub(crate) mod deadline;
mod dispatch;
mod gate;
mod grpc_web_text;
mod guard;
mod limit;
mod method;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tower::Layer;

use crate::api::Api;
use crate::app::App;
use crate::app::iam::bootstrap::Bootstrapped;
use crate::config::Config;
use crate::methods::MethodTable;
use crate::metrics::Metrics;
use crate::model::registry::Registry;
use crate::model::replica::Replica;
use crate::observe::AccessLog;
use crate::pb::iamd::accounts::v1::assignment_service_server::AssignmentServiceServer;
use crate::pb::iamd::accounts::v1::organization_service_server::OrganizationServiceServer;
use crate::pb::iamd::accounts::v1::policy_service_server::PolicyServiceServer as OrgPolicyServiceServer;
use crate::pb::iamd::accounts::v1::role_service_server::RoleServiceServer as OrgRoleServiceServer;
use crate::pb::iamd::admin::v1::admin_service_server::AdminServiceServer;
use crate::pb::iamd::authz::v1::authz_service_server::AuthzServiceServer;
use crate::pb::iamd::authzen::v1::access_service_server::AccessServiceServer;
use crate::pb::iamd::authzen::v1::metadata_service_server::MetadataServiceServer;
use crate::pb::iamd::history::v1::history_service_server::HistoryServiceServer;
use crate::pb::iamd::iam::v2::introspection_service_server::IntrospectionServiceServer;
use crate::pb::iamd::iam::v2::policy_service_server::PolicyServiceServer;
use crate::pb::iamd::iam::v2::role_service_server::RoleServiceServer;
use crate::pb::iamd::iam::v2::team_service_server::TeamServiceServer;
use crate::pb::iamd::iam::v2::tenant_service_server::TenantServiceServer;
use crate::pb::iamd::iam::v2::token_service_server::TokenServiceServer;
use crate::pb::iamd::iam::v2::user_service_server::UserServiceServer;
use crate::store::metered::Metered;
use crate::transcode::routes::RouteTable;
use admission::Admission;
use consistency::ConsistencyLayer;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot start the application: {0}")]
    App(#[from] crate::app::AppError),
    #[error("the embedded descriptor set is invalid: {0}")]
    Descriptors(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("the server stopped before it was ready")]
    StoppedBeforeReady,
    #[error("OIDC: {0}")]
    Oidc(#[from] crate::oidc::OidcError),
    #[error("the server task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A server started in the background (tests, benchmarks, embedders).
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Stops accepting, waits for in-flight requests, closes the store.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.done).await?
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Runs until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), ServerError> {
    run_with(config, crate::kinds::registry(), shutdown, None).await
}

/// Starts on `config.listen` (port 0 for a free port) and returns once it is ready.
pub async fn start(config: Config) -> Result<RunningServer, ServerError> {
    start_with(config, crate::kinds::registry()).await
}

/// [`start`] with the kinds of `registry`, which benchmarks extend with kinds of their own.
pub async fn start_with(config: Config, registry: Registry) -> Result<RunningServer, ServerError> {
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, is_ready) = oneshot::channel::<SocketAddr>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let done = tokio::spawn(run_with(config, registry, shutdown, Some(ready)));
    match is_ready.await {
        Ok(addr) => Ok(RunningServer { addr, stop: Some(stop), done }),
        // It ended before it was ready: with its error.
        Err(_) => match done.await? {
            Err(e) => Err(e),
            Ok(()) => Err(ServerError::StoppedBeforeReady),
        },
    }
}

/// Builds the protocol layers and binds first, so liveness answers while the state loads;
/// then loads it, opens the gate, serves until `shutdown`, lets in-flight requests finish
/// and closes the store.
async fn run_with(
    config: Config,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
    ready: Option<oneshot::Sender<SocketAddr>>,
) -> Result<(), ServerError> {
    let methods = Arc::new(MethodTable::served().map_err(|e| ServerError::Descriptors(e.to_string()))?);
    let table = Arc::new(RouteTable::from_methods(&methods).map_err(|e| ServerError::Descriptors(e.to_string()))?);
    let metrics = Arc::new(Metrics::new(&methods, config.metrics));
    let gate = dispatch::Gate::new(metrics.clone());
    let origins = &config.cors_allowed_origins;
    let service = dispatch::build(gate.clone(), table.clone(), &config.limits, origins, metrics.clone());

    let listen = |source| ServerError::Listen { addr: config.listen, source };
    let listener = connection::listen(config.listen, &config.limits).map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    let (stop_accepting, stopped_accepting) = oneshot::channel::<()>();
    let service = AccessLog { metrics: metrics.clone(), admission: Admission::new(&config.limits) }.layer(service);
    let accepting = {
        let (limits, metrics, grace) = (config.limits, metrics.clone(), config.shutdown_grace);
        tokio::spawn(
            async move { connection::accept(listener, service, &limits, metrics, grace, stopped_accepting).await },
        )
    };
    tracing::info!(%addr, "loading the current state");
    tokio::pin!(shutdown);
    // A stop signal while the state loads stops the server as cleanly as one after.
    let prepared = tokio::select! {
        prepared = prepare(&config, registry, methods, table.clone(), metrics) => Some(prepared),
        () = &mut shutdown => None,
    };
    let replica = match prepared {
        Some(Ok((replica, stack))) => {
            gate.open(stack, replica.store().clone());
            replica
        }
        stopped_or_failed => {
            let _ = stop_accepting.send(());
            let _ = accepting.await;
            return stopped_or_failed.map_or(Ok(()), |failed| failed.map(drop));
        }
    };
    match &config.database_url {
        Some(_) => tracing::info!(%addr, store = "postgresql", "iamd listening"),
        None => tracing::info!(%addr, store = "sqlite", data_dir = %config.data_dir.display(), "iamd listening"),
    }
    // Tests and scripts read the address from this line: from now on the server is ready.
    println!("iamd listening on http://{addr}");
    if let Some(ready) = ready {
        let _ = ready.send(addr);
    }
    shutdown.await;
    let _ = stop_accepting.send(());
    let _ = accepting.await;
    // Stops the follower, then closes the store.
    replica.close().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn prepare(
    config: &Config,
    registry: Registry,
    methods: Arc<MethodTable>,
    routes: Arc<RouteTable>,
    metrics: Arc<Metrics>,
) -> Result<(Arc<Replica>, dispatch::GrpcService), ServerError> {
    let oidc = match config.oidc_settings() {
        Some(settings) => Some(Arc::new(crate::oidc::Verifier::new(settings).await?)),
        None => None,
    };
    let backend = Metered::wrap(crate::store::open(config).await?, metrics.clone());
    let replica = Replica::open_with(backend, registry, config.follow_interval, metrics.clone()).await?;
    let started = replica.started();
    tracing::info!(objects = started.loaded.objects, applied = started.applied, "loaded the current state");
    let app = App::new(replica.clone(), &methods, config.consistency_wait).await?;
    bootstrap(&app, config).await?;
    let api = Api::new(app.clone(), methods.clone(), routes, config.public_url.as_deref());

    let limit = config.limits.max_body_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<AdminServiceServer<Api>>().await;
    health.set_serving::<OrganizationServiceServer<Api>>().await;
    health.set_serving::<HistoryServiceServer<Api>>().await;
    health.set_serving::<AuthzServiceServer<Api>>().await;
    health.set_serving::<PolicyServiceServer<Api>>().await;
    health.set_serving::<RoleServiceServer<Api>>().await;
    health.set_serving::<TenantServiceServer<Api>>().await;
    health.set_serving::<UserServiceServer<Api>>().await;
    health.set_serving::<TeamServiceServer<Api>>().await;
    health.set_serving::<TokenServiceServer<Api>>().await;
    health.set_serving::<IntrospectionServiceServer<Api>>().await;
    health.set_serving::<AccessServiceServer<Api>>().await;
    health.set_serving::<MetadataServiceServer<Api>>().await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let grpc = tonic::service::Routes::new(AdminServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(OrganizationServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(OrgPolicyServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(OrgRoleServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(AssignmentServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(PolicyServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(RoleServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(TenantServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(UserServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(TeamServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(TokenServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(IntrospectionServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(AuthzServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(AccessServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(MetadataServiceServer::new(api.clone()).max_decoding_message_size(limit))
        .add_service(HistoryServiceServer::new(api).max_decoding_message_size(limit))
        .add_service(health_service)
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?);

    let parts = dispatch::Parts {
        routes: grpc,
        methods,
        limit: limit::MessageLimitLayer::new(limit, metrics.clone()),
        default_deadline: config.limits.default_deadline,
        consistency: ConsistencyLayer { replica: replica.clone(), bound: config.consistency_wait },
        guard: guard::GuardLayer { app, oidc },
    };
    Ok((replica, dispatch::stack(parts)))
}

/// Bootstraps the first administrator on a store that never had one. A secret iamd made is
/// shown once, on stderr, and nowhere else: not in the log, the store or the history.
async fn bootstrap(app: &App, config: &Config) -> Result<(), ServerError> {
    // An empty setting is no setting: a token must have a secret.
    let configured = config.bootstrap_token.as_ref().map(|s| s.expose()).filter(|s| !s.is_empty());
    match app.bootstrap(configured).await? {
        Bootstrapped::Now { generated: Some(secret) } => {
            tracing::info!("bootstrapped the administrator `admin` with a generated token, printed once on stderr");
            eprintln!("iamd bootstrap token (shown once; send it as `Authorization: Bearer <token>`): {secret}");
        }
        Bootstrapped::Now { generated: None } => {
            tracing::info!("bootstrapped the administrator `admin` with the configured IAMD_BOOTSTRAP_TOKEN");
        }
        Bootstrapped::Before { ignored: true } => {
            tracing::warn!(
                "IAMD_BOOTSTRAP_TOKEN is not the token of the first start and is ignored: only that one was ever stored"
            );
        }
        Bootstrapped::Before { ignored: false } => {}
    }
    Ok(())
}
