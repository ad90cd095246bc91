/**
 * Channel settings of the long-lived sidecar/run connection: a projection may carry up
 * to 8 MiB of values (grpc-js would refuse anything over 4 MiB by default), and
 * keepalive pings notice a silently dead connection, so the watch is re-opened instead
 * of waiting forever on a stream that will never speak again.
 *
 * Reconnects are paced by our own backoff (backoff.ts), not by grpc-js's: its channel
 * backs off underneath (1 s growing ×1.6 to 120 s) and, while it does, fails every call
 * at once with the last, stale error, so a server back for a minute still looked down.
 * The watch loop opens a fresh channel per attempt; a local subchannel pool makes it
 * really fresh (the global pool would hand back the old connection, backoff and all),
 * and grpc-js's own backoff is held at 1 s for a channel that is kept (`secretd run`).
 */
import type { ChannelOptions } from "@grpc/grpc-js";

export const WATCH_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.max_receive_message_length": 16 * 1024 * 1024,
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 0,
  "grpc.use_local_subchannel_pool": 1,
  "grpc.initial_reconnect_backoff_ms": 1000,
  "grpc.max_reconnect_backoff_ms": 1000,
};
