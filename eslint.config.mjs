// The linter (npm run lint, in .ci/run): typescript-eslint's recommended rules without
// type information, so it stays fast; src/gen is generated and not linted.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const node = {
  process: "readonly", console: "readonly", Buffer: "readonly", URL: "readonly", TextDecoder: "readonly", TextEncoder: "readonly",
  setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", setImmediate: "readonly", clearImmediate: "readonly",
  queueMicrotask: "readonly", AbortController: "readonly", AbortSignal: "readonly", performance: "readonly", structuredClone: "readonly", fetch: "readonly",
};

export default tseslint.config(
  { ignores: ["src/gen/**", "dist/**", "node_modules/**", "coverage/**", "data/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { languageOptions: { globals: node } },
  { files: ["**/*.cjs"], languageOptions: { sourceType: "commonjs", globals: { module: "writable", require: "readonly" } } },
  {
    rules: {
      // A leading underscore marks a binding kept on purpose (a parameter in position, a
      // field left out of a rest copy).
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_", destructuredArrayIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
      // `let x;` that closures read before its one assignment (app.ts's metrics sources) is not a const.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
    },
  },
);
