// How the CLI reaches Timmy's HTTP API: the base URL (TIMMY_API, else HTTP_HOST/HTTP_PORT) and requests
// whose network failures name the URL they tried.
export class UnreachableError extends Error {
  override name = 'UnreachableError';
}

/** TIMMY_API, else http://<HTTP_HOST>:<HTTP_PORT> (a wildcard listen address means this machine). */
export function defaultApi(env: NodeJS.ProcessEnv = process.env): string {
  if (env.TIMMY_API?.trim()) return env.TIMMY_API.trim().replace(/\/+$/, '');
  let host = env.HTTP_HOST?.trim() || '127.0.0.1';
  if (host === '0.0.0.0' || host === '::' || host === '[::]') host = '127.0.0.1';
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  const port = env.HTTP_PORT?.trim() && env.HTTP_PORT.trim() !== '0' ? env.HTTP_PORT.trim() : '8080';
  return `http://${host}:${port}`;
}

/** `fetch`, but a failure to connect says which URL and why ("could not reach http://…: ECONNREFUSED"). */
export async function fetchApi(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new UnreachableError(`could not reach ${url}: ${why}`, { cause: err });
  }
}

export const apiUrl = (api: string, path: string) => `${api.replace(/\/+$/, '')}${path}`;

/** JSON over HTTP to Timmy's API; throws with the server's error text on a non-2xx answer. */
export async function apiCall<T>(api: string, method: string, path: string, body?: unknown, bearer?: string): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const res = await fetchApi(apiUrl(api, path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const parsed = (await res.json().catch(() => ({}))) as T & { error?: string };
  if (!res.ok) throw new ApiError(res.status, `${method} ${path}: HTTP ${res.status}: ${parsed.error ?? 'no detail'}`);
  return parsed;
}

/** A non-2xx answer of the API, with its status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
