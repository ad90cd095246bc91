/**
 * Channel settings of the long-lived sidecar/run connection: a projection may carry up
 * to 8 MiB of values (grpc-js would refuse anything over 4 MiB by default), and
 * keepalive pings notice a silently dead connection, so the watch is re-opened instead
 * of waiting forever on a stream that will never speak again.
 */
import type { ChannelOptions } from "@grpc/grpc-js";

export const WATCH_CHANNEL_OPTIONS: ChannelOptions = {
  "grpc.max_receive_message_length": 16 * 1024 * 1024,
  "grpc.keepalive_time_ms": 30_000,
  "grpc.keepalive_timeout_ms": 10_000,
  "grpc.keepalive_permit_without_calls": 0,
};
