/**
 * The layers of ARCHITECTURE.md, checked on the import graph (`npm run lint:layers`, run
 * by .ci/run): dependencies point down — entry points (main, cli, sidecar, cluster,
 * app) → transport → domain (and its services: watch, audit) → storage / crypto → the
 * ground floor (errors, duration and the other small top-level helpers). Type-only
 * imports count too: a type names the layer it comes from. The one exception is the
 * generated API messages: the domain and watch/ may name their types (erased at run
 * time), never load them, since loading src/gen loads @grpc/grpc-js.
 */

/** Top-level modules every layer may import: they import nothing above themselves. */
const GROUND = "^src/(errors|duration|uid-lru|rate-limited|make-dirs|key-file-mode|log-destination|logger|tls-material)\\.ts$";
const GEN = "^src/gen/";
const GRPC = "(^|/)node_modules/(@grpc/grpc-js|grpc-health-check)/";

/** One forbidden arrow: no exceptions are carved out (#28 removed the last tolerated one). */
const rule = (name, comment, from, to) => [{ name, comment, severity: "error", from, to }];

const rules = [
  ...rule("ground-floor", "the ground floor (errors, duration, small helpers) imports only itself", { path: GROUND }, { path: "^src/", pathNot: GROUND }),
  ...rule("gen-is-generated", "src/gen imports only src/gen", { path: GEN }, { path: "^src/", pathNot: GEN }),
  ...rule("crypto-is-primitives", "crypto/ holds primitives: it imports only itself and the ground floor (orchestration is domain work)", { path: "^src/crypto/" }, { path: "^src/", pathNot: [GROUND, "^src/crypto/"] }),
  ...rule("storage-below-domain", "storage/ sees bytes and rows: never the domain, crypto, the API, auth or the transport", { path: "^src/storage/" }, { path: "^src/", pathNot: [GROUND, "^src/storage/"] }),
  ...rule("domain-below-transport", "the domain imports storage, crypto and the ground floor only", { path: "^src/domain/" }, { path: "^src/", pathNot: [GROUND, GEN, "^src/(domain|storage|crypto)/"] }),
  ...rule("audit-is-a-sink", "audit/ (queue, flush, file sink) writes through storage; it knows no domain or transport", { path: "^src/audit/" }, { path: "^src/", pathNot: [GROUND, "^src/(audit|storage)/"] }),
  ...rule("watch-below-transport", "watch/ builds on the domain and the change feed, never on the transport", { path: "^src/watch/" }, { path: "^src/", pathNot: [GROUND, GEN, "^src/(watch|domain|storage|crypto)/"] }),
  ...rule("auth-below-transport", "auth/ verifies tokens into a Principal; it knows no storage or transport", { path: "^src/auth/" }, { path: "^src/", pathNot: [GROUND, "^src/(auth)/", "^src/domain/(principal|text)\\.ts$"] }),
  ...rule("transport-above-domain", "the transport calls the domain (and watch/, audit/, auth/); it never reads storage or crypto itself, nor imports an entry point", { path: "^src/transport/" }, { path: "^src/", pathNot: [GROUND, GEN, "^src/config\\.ts$", "^src/(transport|domain|watch|audit|auth)/", "^src/storage/storage\\.ts$"] }),
  ...rule("transport-rows-are-types", "the transport names storage rows (to convert them to messages) but never calls storage", { path: "^src/transport/" }, { path: "^src/storage/", dependencyTypesNot: ["type-only"] }),
  ...rule("transport-no-storage-handle", "only convert.ts names storage rows; handlers get the domain", { path: "^src/transport/", pathNot: "^src/transport/grpc/convert\\.ts$" }, { path: "^src/storage/" }),
  ...rule("client-is-client-side", "client/ (shared by cli/ and sidecar/) talks to a server; it never loads server layers or the commands that use it", { path: "^src/client/" }, { path: "^src/", pathNot: [GROUND, GEN, "^src/client/", "^src/domain/(env-names|validation|secret-types)\\.ts$"] }),
  ...rule("sidecar-not-cli", "sidecar/ uses client/, never cli/ or the server", { path: "^src/sidecar/" }, { path: "^src/", pathNot: [GROUND, GEN, "^src/(sidecar|client)/"] }),
  ...rule("csi-is-client-side", "csi/ (the CSI driver's provider) uses client/ and the sidecar's layout rules, never cli/ or the server", { path: "^src/csi/" }, { path: "^src/", pathNot: [GROUND, GEN, "^src/(csi|client)/", "^src/sidecar/(atomic-writer|projected-files)\\.ts$"] }),
  ...rule("cli-not-sidecar", "cli/ and sidecar/ are separate entry points", { path: "^src/cli/" }, { path: "^src/sidecar/" }),
  ...rule("nothing-imports-main", "main.ts is the process entry", { path: "^src/" }, { path: "^src/main\\.ts$" }),
  ...rule("app-is-the-top", "only the serve verb starts the app", { path: "^src/", pathNot: "^src/(main|cli/serve)\\.ts$" }, { path: "^src/app\\.ts$" }),
  ...rule("domain-loads-no-gen", "the domain and watch/ may name generated types, never load src/gen (it loads @grpc/grpc-js)", { path: "^src/(domain|watch|storage|crypto|audit)/" }, { path: GEN, dependencyTypesNot: ["type-only"] }),
  ...rule("grpc-in-transport-and-client", "@grpc/grpc-js belongs to the transport and the client side", { path: "^src/", pathNot: ["^src/gen/", "^src/(transport|client|cli|sidecar|csi)/"] }, { path: GRPC }),
  ...rule("config-at-the-top", "config is read once at start and passed down as values", { path: "^src/(domain|storage|crypto|audit|watch|auth|client)/" }, { path: "^src/config\\.ts$" }),
];

module.exports = {
  forbidden: [
    ...rules,
    {
      name: "not-to-unresolvable",
      comment: "an import that resolves to nothing is a typo or a missing dependency",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    includeOnly: "^src/|node_modules/",
    tsPreCompilationDeps: true,
    preserveSymlinks: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
