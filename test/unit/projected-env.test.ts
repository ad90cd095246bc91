import { describe, expect, it } from "vitest";
import { checkedEnv, type EnvCandidate } from "../../src/client/projected-env.js";
import { deniedEnvFamily } from "../../src/domain/env-names.js";

const value = Buffer.from("v");
const derived = (env: string): EnvCandidate => ({ secret: "s", key: env.toLowerCase(), env, explicit: false, value });
const explicit = (env: string): EnvCandidate => ({ secret: "s", key: "k", env, explicit: true, value });

// Every name the security review (#26.15) and the identity finding (#26.7) reported.
const REPORTED = [
  "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "NODE_TLS_REJECT_UNAUTHORIZED", "NODE_EXTRA_CA_CERTS", "NODE_OPTIONS",
  "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSH_COMMAND", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "OPENSSL_CONF",
  "DOTNET_STARTUP_HOOKS", "PERL5DB", "PERL5OPT", "LESSOPEN", "PAGER", "EDITOR", "ZDOTDIR", "PYTHONWARNINGS", "PYTHONSTARTUP",
  "BROWSER", "USER", "LOGNAME", "TERM", "PWD", "TZ", "HOSTNAME", "HOME", "PATH", "SHELL", "LANG", "TMPDIR", "IFS", "LD_PRELOAD",
  "DYLD_INSERT_LIBRARIES", "BASH_ENV", "JAVA_TOOL_OPTIONS", "SSL_CERT_FILE",
];

describe("env names where env is produced (#26.6, #26.7, #26.15)", () => {
  it.each(REPORTED)("when a derived name is %s, then it is refused; named explicitly in env it is kept", (name) => {
    expect(deniedEnvFamily(name)).toBeDefined();
    expect(() => checkedEnv([derived(name)])).toThrow(/derived env name/);
    expect(checkedEnv([explicit(name)])).toEqual([[name, "v"]]);
  });

  it.each(["BASH_FUNC_x%%", "A=B", "A\nB", "A\0B", "1ST", "", "x".repeat(257)])("when the server sends the name %j, then it never reaches a child, explicit or not", (name) => {
    expect(() => checkedEnv([explicit(name)])).toThrow(/must match/);
    expect(() => checkedEnv([derived(name)])).toThrow(/must match/);
  });

  it("when two values share a name, then it is refused; ordinary derived names pass", () => {
    expect(() => checkedEnv([derived("PASSWORD"), { ...derived("PASSWORD"), secret: "t" }])).toThrow(/also produced by/);
    expect(checkedEnv([derived("DB_PASSWORD"), derived("APP_USER"), derived("API_TOKEN")]).map(([n]) => n)).toEqual(["DB_PASSWORD", "APP_USER", "API_TOKEN"]);
  });
});
