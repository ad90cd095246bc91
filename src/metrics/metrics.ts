/**
 * Prometheus series (prom-client) on a registry of our own. The gRPC series follow
 * go-grpc-prometheus (grpc_type, grpc_service, grpc_method, grpc_code), so existing
 * dashboards and alerts apply. Label values are method and code names only: a tenant
 * name appears only in secretd_tenant_handled_total, and only with
 * --metrics-tenant-labels; a secret name, value or token never does.
 */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { CallObserver } from "../transport/grpc/call.js";

const SERVICE = "secrets.v1.SecretService";
/** grpc_type of a method: the server-streaming ones by name, unary otherwise. */
const SERVER_STREAMS: ReadonlySet<string> = new Set(["WatchProjection"]);

function grpcType(method: string): string {
  return SERVER_STREAMS.has(method) ? "server_stream" : "unary";
}
/** Unary calls take tens of µs to a few ms; the buckets reach a stalled-disk second. */
const CALL_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface MetricsOptions {
  readonly tenantLabels: boolean;
  /** Read at each scrape. */
  readonly auditQueueDepth: () => number;
  readonly auditDropped: () => number;
  readonly activeKekId: () => string;
  /** Read at each scrape: the watch hub's count of open streams. */
  readonly openWatches: () => number;
}

type MethodLabels = "grpc_type" | "grpc_service" | "grpc_method";

export class Metrics implements CallObserver {
  readonly registry = new Registry();
  readonly #started: Counter<MethodLabels>;
  readonly #handled: Counter<MethodLabels | "grpc_code">;
  readonly #seconds: Histogram<MethodLabels>;
  readonly #tenantHandled: Counter<"tenant" | "grpc_method" | "grpc_code"> | undefined;
  readonly #auditFlush: Histogram;
  readonly #auditEvents: Counter;
  readonly #commit: Histogram;

  constructor(opts: MetricsOptions) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.#started = new Counter({
      name: "grpc_server_started_total",
      help: "RPCs started on the server.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method"],
      registers,
    });
    this.#handled = new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, by gRPC status code.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
      registers,
    });
    this.#seconds = new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Time from the start of an RPC to its status, in seconds.",
      labelNames: ["grpc_type", "grpc_service", "grpc_method"],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.#tenantHandled = opts.tenantLabels
      ? new Counter({
          name: "secretd_tenant_handled_total",
          help: "RPCs completed per tenant (only with --metrics-tenant-labels).",
          labelNames: ["tenant", "grpc_method", "grpc_code"],
          registers,
        })
      : undefined;
    new Gauge({
      name: "secretd_watches_open",
      help: "Open WatchProjection streams.",
      registers,
      collect() {
        this.set(opts.openWatches());
      },
    });
    new Gauge({
      name: "secretd_audit_queue_depth",
      help: "Audit events recorded and not yet written to storage.",
      registers,
      collect() {
        this.set(opts.auditQueueDepth());
      },
    });
    new Gauge({
      name: "secretd_audit_dropped_events",
      help: "Audit events not stored since start: past a tenant's quota or a full queue (each window's counted in an AuditEventsSuppressed event), or after shutdown began.",
      registers,
      collect() {
        this.set(opts.auditDropped());
      },
    });
    this.#auditFlush = new Histogram({
      name: "secretd_audit_flush_seconds",
      help: "Time to write one batch of audit events (file and storage commit).",
      buckets: COMMIT_BUCKETS,
      registers,
    });
    this.#auditEvents = new Counter({ name: "secretd_audit_events_written_total", help: "Audit events written to storage.", registers });
    this.#commit = new Histogram({
      name: "secretd_storage_commit_seconds",
      help: "Time of one storage write transaction, COMMIT (fsync) included.",
      buckets: COMMIT_BUCKETS,
      registers,
    });
    const kek = new Gauge({
      name: "secretd_kek_active_info",
      help: "The key-encryption key that wraps new data keys (value 1, id in the label).",
      labelNames: ["kek_id"],
      registers,
      // Across --workers, 1 for each id some worker uses (a sum would count workers).
      aggregator: "max",
      collect() {
        kek.reset();
        kek.set({ kek_id: opts.activeKekId() }, 1);
      },
    });
  }

  started(method: string): void {
    this.#started.inc({ grpc_type: grpcType(method), grpc_service: SERVICE, grpc_method: method });
  }

  handled(method: string, code: string, seconds: number, tenant: string | undefined): void {
    const labels = { grpc_type: grpcType(method), grpc_service: SERVICE, grpc_method: method };
    this.#handled.inc({ ...labels, grpc_code: code });
    this.#seconds.observe(labels, seconds);
    if (this.#tenantHandled && tenant !== undefined) this.#tenantHandled.inc({ tenant, grpc_method: method, grpc_code: code });
  }

  auditFlushed(seconds: number, events: number): void {
    this.#auditFlush.observe(seconds);
    this.#auditEvents.inc(events);
  }

  storageCommitted(seconds: number): void {
    this.#commit.observe(seconds);
  }

  /**
   * In a `--workers` worker: answer the primary's requests for this registry (prom-client's
   * cluster protocol over the IPC channel); the primary serves the sum on --metrics-listen.
   */
  serveToPrimary(): void {
    AggregatorRegistry.setRegistries([this.registry]);
    new AggregatorRegistry(); // installs the worker's IPC listener
  }
}

/** In the `--workers` primary: /metrics as the aggregate of every worker's registry. */
export function clusterMetricsSource(): { metrics(): Promise<string>; readonly contentType: string } {
  const agg = new AggregatorRegistry();
  return {
    metrics: () => agg.clusterMetrics(),
    get contentType() {
      return agg.contentType;
    },
  };
}
