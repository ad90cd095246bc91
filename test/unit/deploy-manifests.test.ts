/**
 * deploy/kubernetes/ (#31 item 3), checked without a cluster: every file parses; each
 * object is an apiVersion/kind pair Kubernetes or the Secrets Store CSI Driver defines;
 * selectors match template labels, volume mounts name volumes, Service ports name
 * container ports; container args name only flags secretd has (serve: the settings of
 * src/config.ts, run through loadConfig; csi-provider: the flags of its command); and the
 * files agree with each other (audience, issuer, socket directory, server address,
 * SecretProviderClass, claims mapping).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { mappedPrincipal, parseClaimsMapping } from "../../src/auth/claims-mapping.js";
import { parseProjection } from "../../src/client/projection-file.js";
import { parseServerAddress } from "../../src/client/server-address.js";
import { loadConfig, SETTINGS, type ConfigFlags } from "../../src/config.js";

const DIR = path.resolve("deploy/kubernetes");
const PROVIDER_DIR = "/etc/kubernetes/secrets-store-csi-providers";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

/** apiVersion → the kinds it serves, and whether they are namespaced (Kubernetes API reference; the driver's CRDs). */
const KINDS: Record<string, Record<string, boolean>> = {
  v1: { Namespace: false, ServiceAccount: true, ConfigMap: true, Secret: true, Service: true, Pod: true },
  "apps/v1": { StatefulSet: true, Deployment: true, DaemonSet: true },
  "rbac.authorization.k8s.io/v1": { Role: true, RoleBinding: true, ClusterRole: false, ClusterRoleBinding: false },
  "storage.k8s.io/v1": { CSIDriver: false },
  "networking.k8s.io/v1": { NetworkPolicy: true },
  "secrets-store.csi.x-k8s.io/v1": { SecretProviderClass: true, SecretProviderClassPodStatus: true },
};

const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f)).sort();
const objects: (Obj & { file: string })[] = files.flatMap((file) =>
  parseAllDocuments(readFileSync(path.join(DIR, file), "utf8")).map((doc) => {
    expect(doc.errors, file).toEqual([]);
    return { ...(doc.toJS() as Obj), file };
  }),
);
const ofKind = (kind: string): (Obj & { file: string })[] => objects.filter((o) => o.kind === kind);
const workloads = objects.filter((o) => ["StatefulSet", "Deployment", "DaemonSet"].includes(o.kind as string));

/** `--flag=value` / `--flag value` → [flag, value]; a bare switch → [flag, "true"]. */
function flagsOf(args: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) continue;
    const eq = a.indexOf("=");
    if (eq > 0) out.push([a.slice(2, eq), a.slice(eq + 1)]);
    else if (args[i + 1] !== undefined && !args[i + 1]!.startsWith("--")) out.push([a.slice(2), args[++i]!]);
    else out.push([a.slice(2), "true"]);
  }
  return out;
}

/**
 * The flags `secretd csi-provider` takes: read from its command when this checkout has it
 * (src/csi/csi-provider-command.ts), else the ones SPEC §8 and issue #31 name with the
 * client's connection flags.
 */
function providerFlags(): Set<string> {
  const src = path.resolve("src/csi/csi-provider-command.ts");
  if (existsSync(src)) return new Set([...readFileSync(src, "utf8").matchAll(/"--([a-z][a-z0-9-]*)[ "]/g)].map((m) => m[1]!));
  return new Set(["socket", "server", "ca", "cert", "cert-key", "tls", "timeout", "socket-mode", "log-level"]);
}

function containers(w: Obj): Obj[] {
  return [...((w.spec.template.spec.containers as Obj[]) ?? []), ...((w.spec.template.spec.initContainers as Obj[]) ?? [])];
}

function serveContainer(): { w: Obj; c: Obj; flags: Map<string, string> }[] {
  return workloads.flatMap((w) =>
    containers(w)
      .filter((c) => (c.args as string[] | undefined)?.[0] === "serve")
      .map((c) => ({ w, c, flags: new Map(flagsOf(c.args as string[])) })),
  );
}

const serving = serveContainer();
const audience = (): string => serving[0]!.flags.get("jwt-audience")!;

/** The path a container sees `file` at comes from one of its mounts. */
function mountFor(c: Obj, file: string): Obj | undefined {
  return (c.volumeMounts as Obj[] | undefined)?.find((m) => file === m.mountPath || file.startsWith(`${String(m.mountPath).replace(/\/$/, "")}/`));
}

describe("deploy/kubernetes", () => {
  it("holds the files the README's Kubernetes section names", () => {
    expect(files.length).toBeGreaterThan(0);
    for (const kind of ["Namespace", "ServiceAccount", "ClusterRoleBinding", "ConfigMap", "Service", "StatefulSet", "Deployment", "DaemonSet", "CSIDriver", "SecretProviderClass", "NetworkPolicy"]) {
      expect(ofKind(kind).length, kind).toBeGreaterThan(0);
    }
    const readme = readFileSync("README.md", "utf8");
    for (const f of files) expect(readme, `README names ${f}`).toContain(f);
  });

  it("every object is a known apiVersion/kind with a name, and a namespace exactly when namespaced", () => {
    for (const o of objects) {
      const where = `${o.file}: ${o.kind} ${o.metadata?.name}`;
      const namespaced = KINDS[o.apiVersion as string]?.[o.kind as string];
      expect(namespaced, `${where}: ${o.apiVersion} ${o.kind} is not a known pair`).toBeTypeOf("boolean");
      expect(o.metadata?.name, where).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
      if (namespaced) expect(o.metadata?.namespace, where).toMatch(/^[a-z0-9-]+$/);
      else expect(o.metadata?.namespace, where).toBeUndefined();
    }
  });

  it("workloads: selectors match template labels, mounts name volumes, each volume is mounted", () => {
    for (const w of workloads) {
      const where = `${w.file}: ${w.kind} ${w.metadata.name}`;
      const labels = w.spec.template.metadata.labels as Record<string, string>;
      expect(Object.keys(w.spec.selector.matchLabels).length, where).toBeGreaterThan(0);
      for (const [k, v] of Object.entries(w.spec.selector.matchLabels as Record<string, string>)) expect(labels[k], `${where}: selector ${k}`).toBe(v);
      const volumes = new Set([
        ...((w.spec.template.spec.volumes as Obj[] | undefined) ?? []).map((v) => v.name as string),
        ...((w.spec.volumeClaimTemplates as Obj[] | undefined) ?? []).map((v) => v.metadata.name as string),
      ]);
      const mounted = new Set<string>();
      for (const c of containers(w)) {
        for (const m of (c.volumeMounts as Obj[] | undefined) ?? []) {
          expect(volumes.has(m.name as string), `${where}: mount ${m.name} names no volume`).toBe(true);
          expect(m.mountPath, where).toMatch(/^\//);
          mounted.add(m.name as string);
        }
        expect(c.securityContext?.allowPrivilegeEscalation, `${where}: ${c.name}`).toBe(false);
        expect(c.securityContext?.capabilities?.drop, `${where}: ${c.name}`).toContain("ALL");
      }
      for (const v of volumes) expect(mounted.has(v), `${where}: volume ${v} is never mounted`).toBe(true);
      const sa = w.spec.template.spec.serviceAccountName as string;
      expect(ofKind("ServiceAccount").some((s) => s.metadata.name === sa && s.metadata.namespace === w.metadata.namespace), `${where}: service account ${sa}`).toBe(true);
      // A ConfigMap or Secret volume names an object these files make, or one made by hand (README) / by Kubernetes.
      for (const v of (w.spec.template.spec.volumes as Obj[] | undefined) ?? []) {
        if (v.configMap) expect(["kube-root-ca.crt", "secretd-ca", ...ofKind("ConfigMap").map((c) => c.metadata.name)], where).toContain(v.configMap.name);
        if (v.secret) expect(["secretd-kek", "secretd-tls"], where).toContain(v.secret.secretName);
      }
    }
  });

  it("secretd's args are `serve` settings of src/config.ts that load, with their files under mounts", () => {
    expect(serving.map((s) => s.w.kind).sort()).toEqual(["Deployment", "StatefulSet"]);
    const byFlag = new Map<string, string>(SETTINGS.map((s) => [s.flag, s.key]));
    for (const { w, c, flags } of serving) {
      const where = `${w.file}: ${c.name}`;
      const cfg: ConfigFlags = {};
      for (const [flag, value] of flags) {
        const key = byFlag.get(flag);
        expect(key, `${where}: --${flag} is not a secretd serve flag`).toBeDefined();
        cfg[key as keyof ConfigFlags] = value;
      }
      const env: Record<string, string> = {};
      for (const e of (c.env as Obj[] | undefined) ?? []) {
        if (e.name.startsWith("SECRETD_")) expect(SETTINGS.some((s) => s.env === e.name), `${where}: env ${e.name}`).toBe(true);
        env[e.name as string] = typeof e.value === "string" ? e.value : "postgres://secretd@db:5432/secretd";
      }
      const config = loadConfig(cfg, env);
      expect(config.jwt.oidcIssuer, where).not.toBe("");
      expect(config.jwt.audience, where).not.toBe("");
      for (const file of [config.kekFile, config.tls?.cert, config.tls?.key, config.jwt.claimsMapping, env.NODE_EXTRA_CA_CERTS]) {
        expect(file && mountFor(c, file), `${where}: ${file} is under no mount`).toBeTruthy();
      }
      expect(mountFor(c, config.dataDir), `${where}: data dir`).toBeTruthy();
      const port = (c.ports as Obj[]).find((p) => p.name === "grpc");
      expect(port?.containerPort, where).toBe(config.listen.port);
      expect(config.listen.host, where).toBe("0.0.0.0");
    }
    expect(serving.find((s) => s.w.kind === "Deployment")!.c.env.some((e: Obj) => e.name === "SECRETD_DATABASE_URL" && e.valueFrom?.secretKeyRef)).toBe(true);
    expect(serving.find((s) => s.w.kind === "StatefulSet")!.w.spec.replicas).toBe(1);
  });

  it("the Service selects secretd's pods and targets their gRPC port; the StatefulSet names it", () => {
    const [svc] = ofKind("Service").filter((s) => s.metadata.name === "secretd");
    expect(svc).toBeDefined();
    for (const { w, c } of serving) {
      for (const [k, v] of Object.entries(svc!.spec.selector as Record<string, string>)) expect(w.spec.template.metadata.labels[k], w.file).toBe(v);
      for (const p of svc!.spec.ports as Obj[]) expect((c.ports as Obj[]).some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort), `${w.file}: targetPort ${p.targetPort}`).toBe(true);
    }
    expect(ofKind("StatefulSet")[0]!.spec.serviceName).toBe(svc!.metadata.name);
  });

  it("the provider DaemonSet runs `csi-provider` with its own flags, its socket in the driver's provider directory (hostPath), dialling the Service", () => {
    const [ds] = ofKind("DaemonSet");
    const c = containers(ds!).find((x) => (x.args as string[])[0] === "csi-provider")!;
    expect(c).toBeDefined();
    const known = providerFlags();
    const flags = new Map(flagsOf(c.args as string[]));
    for (const flag of flags.keys()) expect(known.has(flag), `--${flag} is not a csi-provider flag`).toBe(true);
    const socket = flags.get("socket")!;
    expect(socket).toBe(`${PROVIDER_DIR}/secretd.sock`);
    const mount = mountFor(c, socket)!;
    const volume = (ds!.spec.template.spec.volumes as Obj[]).find((v) => v.name === mount.name)!;
    expect(volume.hostPath?.path).toBe(PROVIDER_DIR);
    expect(mount.mountPath).toBe(PROVIDER_DIR);
    expect(mountFor(c, flags.get("ca")!)).toBeTruthy();
    const server = parseServerAddress(flags.get("server")!);
    const svc = ofKind("Service").find((s) => s.metadata.name === "secretd")!;
    expect(server.host).toBe(`${svc.metadata.name}.${svc.metadata.namespace}.svc`);
    expect((svc.spec.ports as Obj[]).map((p) => p.port)).toContain(server.port);
  });

  it("the CSIDriver asks the kubelet for tokens of secretd's --jwt-audience", () => {
    const [d] = ofKind("CSIDriver");
    expect(d!.metadata.name).toBe("secrets-store.csi.k8s.io");
    expect(d!.spec.podInfoOnMount).toBe(true);
    expect(d!.spec.attachRequired).toBe(false);
    expect(d!.spec.volumeLifecycleModes).toEqual(["Ephemeral"]);
    expect(d!.spec.requiresRepublish).toBe(true);
    const req = (d!.spec.tokenRequests as Obj[]).find((t) => t.audience === audience());
    expect(req).toBeDefined();
    // TokenRequest: at least 10 minutes; within secretd's --jwt-max-ttl (24 h default).
    expect(req!.expirationSeconds).toBeGreaterThanOrEqual(600);
    expect(req!.expirationSeconds).toBeLessThanOrEqual(24 * 3600);
  });

  it("the SecretProviderClass holds only the parameters SPEC §8 names, as strings, with a projection that parses", () => {
    for (const spc of ofKind("SecretProviderClass")) {
      expect(spc.spec.provider).toBe("secretd");
      const params = spc.spec.parameters as Record<string, unknown>;
      for (const [k, v] of Object.entries(params)) {
        expect(["objects", "mesh", "serverAddress", "audience"], k).toContain(k);
        expect(typeof v, k).toBe("string");
      }
      expect(params.audience ?? audience()).toBe(audience());
      const projection = parseProjection(params.objects as string, { mesh: params.mesh as string });
      expect(projection.items.length).toBeGreaterThan(0);
      if (params.serverAddress !== undefined) parseServerAddress(params.serverAddress as string);
    }
  });

  it("the example pod mounts the SecretProviderClass, and the claims mapping gives its service account the SecretProviderClass's mesh", () => {
    const [pod] = ofKind("Pod");
    const vol = (pod!.spec.volumes as Obj[]).find((v) => v.csi)!;
    expect(vol.csi.driver).toBe("secrets-store.csi.k8s.io");
    const spc = ofKind("SecretProviderClass").find((s) => s.metadata.name === vol.csi.volumeAttributes.secretProviderClass && s.metadata.namespace === pod!.metadata.namespace);
    expect(spc).toBeDefined();
    for (const c of pod!.spec.containers as Obj[]) for (const m of (c.volumeMounts as Obj[]) ?? []) expect((pod!.spec.volumes as Obj[]).map((v) => v.name)).toContain(m.name);

    const cm = ofKind("ConfigMap").find((x) => x.metadata.name === "secretd-claims-mapping")!;
    const [doc] = parseAllDocuments(cm.data["mapping.yaml"] as string);
    const mapping = parseClaimsMapping(doc!.toJS(), "03-claims-mapping.yaml");
    const issuer = serving[0]!.flags.get("jwt-oidc-issuer")!;
    const m = mapping.issuers.get(issuer);
    expect(m, "the mapping names the --jwt-oidc-issuer").toBeDefined();
    const ns = pod!.metadata.namespace as string;
    const sa = pod!.spec.serviceAccountName as string;
    const principal = mappedPrincipal(m!, { iss: issuer, sub: `system:serviceaccount:${ns}:${sa}`, "kubernetes.io": { namespace: ns, serviceaccount: { name: sa } } });
    expect(principal.meshes).toEqual([spc!.spec.parameters.mesh]);
    expect(principal.roles.length).toBeGreaterThan(0);
  });

  it("the NetworkPolicies select the workloads and let the provider reach secretd's port", () => {
    const labelsOf = (name: string): Record<string, string> => workloads.find((w) => w.metadata.name === name)!.spec.template.metadata.labels;
    const policies = ofKind("NetworkPolicy");
    const selects = (np: Obj, labels: Record<string, string>): boolean => Object.entries(np.spec.podSelector.matchLabels as Record<string, string>).every(([k, v]) => labels[k] === v);
    const forSecretd = policies.find((np) => selects(np, labelsOf("secretd")))!;
    const forProvider = policies.find((np) => selects(np, labelsOf("secretd-csi-provider")))!;
    expect(forSecretd).toBeDefined();
    expect(forProvider).toBeDefined();
    const fromProvider = (forSecretd.spec.ingress as Obj[]).find((r) => (r.from as Obj[]).some((f) => f.podSelector && Object.entries(f.podSelector.matchLabels).every(([k, v]) => labelsOf("secretd-csi-provider")[k] === v)));
    expect((fromProvider!.ports as Obj[]).map((p) => p.port)).toContain(50051);
    const toSecretd = (forProvider.spec.egress as Obj[]).find((r) => (r.to as Obj[] | undefined)?.some((t) => t.podSelector && Object.entries(t.podSelector.matchLabels).every(([k, v]) => labelsOf("secretd")[k] === v)));
    expect((toSecretd!.ports as Obj[]).map((p) => p.port)).toContain(50051);
    for (const np of policies) expect(np.spec.policyTypes).toEqual(["Ingress", "Egress"]);
  });

  it("the discovery binding lets secretd read the issuer's public documents, and nothing else", () => {
    const [b] = ofKind("ClusterRoleBinding");
    expect(b!.roleRef).toEqual({ apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "system:service-account-issuer-discovery" });
    expect(ofKind("Role").length + ofKind("ClusterRole").length).toBe(0);
    for (const sa of ofKind("ServiceAccount").filter((s) => s.metadata.namespace === "secretd")) expect(sa.automountServiceAccountToken).toBe(false);
  });
});
