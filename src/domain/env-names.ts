/**
 * Environment names of projected values, and the one policy for names that are DERIVED
 * (env_prefix + the key upper-cased, SPEC §4) rather than named explicitly in a
 * KeyMapping's `env`. A data key is chosen by whoever may write the secret, so a derived
 * name must never become a variable that changes who the process is, how it is loaded,
 * which code an interpreter runs at start, where its traffic goes or which TLS roots it
 * trusts. Families are matched case-insensitively (curl reads `https_proxy`, and an
 * env_prefix may be lower case). An explicit `env` may still name any of them: that is the
 * operator's stated choice. Only env consumers (`secretd run`, `project -o env`,
 * `get -o env`) apply this; the server and file-only consumers never refuse for it.
 */

/** POSIX portable names: no '=', '%', newline or NUL can reach a child's environ. */
export const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_ENV_NAME_LENGTH = 256;
export const ENV_NAME_RULE = "must match [A-Za-z_][A-Za-z0-9_]* (at most 256 characters)";

export function isEnvName(name: string): boolean {
  return name.length <= MAX_ENV_NAME_LENGTH && ENV_NAME_RE.test(name);
}

export function defaultEnvName(prefix: string, key: string): string {
  return prefix + key.toUpperCase().replace(/[^A-Z0-9_]/g, "_");
}

interface Family {
  readonly what: string;
  readonly names?: readonly string[];
  readonly prefixes?: readonly string[];
  readonly suffixes?: readonly string[];
}

/** The deny families, in the order a name is matched (README "Environment names" lists them). */
export const DENIED_ENV_FAMILIES: readonly Family[] = [
  {
    what: "an identity or shell variable",
    names: [
      "USER", "LOGNAME", "USERNAME", "HOME", "PATH", "SHELL", "TERM", "TERMINFO", "TERMINFO_DIRS", "TERMCAP", "PWD", "OLDPWD",
      "TZ", "TZDIR", "HOSTNAME", "HOST", "LANG", "LANGUAGE", "TMPDIR", "TMP", "TEMP", "IFS", "ENV", "CDPATH", "FPATH",
      "GLOBIGNORE", "SHELLOPTS", "BASHOPTS", "SHLVL", "POSIXLY_CORRECT", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND",
      "ZDOTDIR", "INPUTRC", "HISTFILE", "MAIL", "MAILPATH", "MAILCHECK", "DISPLAY", "XAUTHORITY", "_",
      "PAGER", "MANPAGER", "EDITOR", "VISUAL", "BROWSER", "LESS", "LESSOPEN", "LESSCLOSE", "LESSKEY", "LESSKEYIN", "LESSSECURE", "LESSEDIT",
      "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "NLSPATH", "LOCPATH", "GCONV_PATH", "KUBECONFIG",
      "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY",
    ],
    prefixes: ["LC_", "XDG_", "SUDO_", "SSH_", "BASH_", "ZSH_", "SECRETD_"],
  },
  { what: "a loader variable", prefixes: ["LD_", "DYLD_", "MALLOC_", "GLIBC_", "GCONV_"] },
  {
    what: "an interpreter or tool start-up variable",
    names: [
      "CLASSPATH", "PHPRC", "PHP_INI_SCAN_DIR", "TCLLIBPATH", "RUSTFLAGS", "MAKEFLAGS", "GOFLAGS", "GOPROXY", "GOPATH",
      "GOROOT", "GOENV", "GOTOOLCHAIN", "GODEBUG", "GOPRIVATE", "GONOPROXY", "GONOSUMDB", "GOINSECURE", "GOSUMDB",
    ],
    prefixes: [
      "PYTHON", "PIP_", "NODE_", "NPM_CONFIG_", "YARN_", "PERL", "RUBY", "GEM_", "BUNDLE_", "JAVA_", "_JAVA_", "JDK_",
      "DOTNET_", "COREHOST_", "CORECLR_", "COMPLUS_", "GIT_", "LUA_", "CARGO_", "RUSTC_", "RUSTUP_", "KRB5",
      "GRPC_",
    ],
    suffixes: ["_OPTIONS", "_OPTS"],
  },
  { what: "a proxy variable", suffixes: ["_PROXY"] },
  {
    what: "a TLS trust variable",
    names: ["SSLKEYLOGFILE"],
    prefixes: ["SSL_", "OPENSSL_", "CURL_", "REQUESTS_", "WGET"],
    suffixes: ["_CA_BUNDLE", "_CA_CERTS", "_CA_FILE", "_CA_PATH"],
  },
];

/** What a derived name would override ("a loader variable"…), or undefined when it may be used. */
export function deniedEnvFamily(name: string): string | undefined {
  const n = name.toUpperCase();
  for (const f of DENIED_ENV_FAMILIES) {
    if (f.names?.includes(n) || f.prefixes?.some((p) => n.startsWith(p)) || f.suffixes?.some((s) => n.endsWith(s))) return f.what;
  }
  return undefined;
}
