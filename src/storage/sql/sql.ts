/**
 * One SQL text for both dialects: `sql` renders a template's slots as better-sqlite3's
 * named parameters (`@uid`) and as pg's numbered ones (`$1`, the same number each time a
 * name comes again). A slot is
 * - a parameter name, optionally with the PostgreSQL type it needs (`"etag::text"`, for
 *   a parameter pg cannot type by itself, such as one only tested for NULL);
 * - `dialect(sqlite, pg)`, where the two really differ (each side text or `sql`);
 * - another `sql`, spliced in.
 * Text only: each back-end runs the statement its own way (better-sqlite3 synchronously,
 * pg asynchronously), so the rules are shared and the execution is not.
 */
import { SecretdError } from "../../errors.js";

type Token = { text: string } | { param: string; type: string | undefined };

export class Sql {
  /** With `@name` parameters: run with the bind object itself. */
  readonly sqlite: string;
  /** With `$n` parameters: run with values(binds). */
  readonly pg: string;
  private readonly names: string[] = [];

  constructor(
    readonly sqliteTokens: readonly Token[],
    readonly pgTokens: readonly Token[],
  ) {
    this.sqlite = sqliteTokens.map((t) => ("text" in t ? t.text : `@${t.param}`)).join("");
    this.pg = pgTokens
      .map((t) => {
        if ("text" in t) return t.text;
        let n = this.names.indexOf(t.param);
        if (n < 0) n = this.names.push(t.param) - 1;
        return `$${n + 1}${t.type === undefined ? "" : `::${t.type}`}`;
      })
      .join("");
  }

  /** The bind object's values in pg's parameter order (a missing one is a bug, not a NULL). */
  values(binds: object): unknown[] {
    const b = binds as Record<string, unknown>;
    return this.names.map((name) => {
      if (b[name] === undefined) throw new SecretdError("INTERNAL", `sql: no value bound for ${name}`);
      return b[name];
    });
  }
}

/** A fragment written once per dialect. */
export interface Dialected {
  readonly sqlite: string | Sql;
  readonly pg: string | Sql;
}

export const dialect = (sqlite: string | Sql, pg: string | Sql): Dialected => ({ sqlite, pg });

/** Text spliced as it is (a column list, a constant). */
export const raw = (text: string): Dialected => dialect(text, text);

/** `x IS y` with NULL equal to NULL (a compare-and-set on a nullable column). */
export const IS = dialect("IS", "IS NOT DISTINCT FROM");

/**
 * `column` is one of the list bound as `name`: SQLite takes it as a JSON array of text
 * (bind JSON.stringify(list)), PostgreSQL as a text[] (bind the array).
 */
export function inList(column: string, name: string): Dialected {
  return dialect(sql`${raw(column)} IN (SELECT value FROM json_each(${name}))`, sql`${raw(column)} = ANY(${`${name}::text[]`})`);
}

function tokens(part: string | Sql, side: "sqlite" | "pg"): readonly Token[] {
  if (typeof part === "string") return [{ text: part }];
  return side === "sqlite" ? part.sqliteTokens : part.pgTokens;
}

export function sql(parts: TemplateStringsArray | readonly string[], ...slots: ReadonlyArray<string | Dialected | Sql>): Sql {
  const lite: Token[] = [{ text: parts[0]! }];
  const pg: Token[] = [{ text: parts[0]! }];
  slots.forEach((slot, i) => {
    if (typeof slot === "string") {
      const [param, type] = slot.split("::") as [string, string | undefined];
      lite.push({ param, type });
      pg.push({ param, type });
    } else if (slot instanceof Sql) {
      lite.push(...slot.sqliteTokens);
      pg.push(...slot.pgTokens);
    } else {
      lite.push(...tokens(slot.sqlite, "sqlite"));
      pg.push(...tokens(slot.pg, "pg"));
    }
    lite.push({ text: parts[i + 1]! });
    pg.push({ text: parts[i + 1]! });
  });
  return new Sql(lite, pg);
}

/** `INSERT INTO table (columns) VALUES (one parameter per column, named as it) tail`. */
export function insertInto(table: string, columns: readonly string[], tail = ""): Sql {
  const parts = [`INSERT INTO ${table} (${columns.join(", ")}) VALUES (`, ...columns.slice(1).map(() => ", "), `)${tail === "" ? "" : ` ${tail}`}`];
  return sql(parts, ...columns);
}
