// The console's only way to the service: the public JSON API, with the bearer token held in
// memory (never in localStorage or a cookie: closing the tab signs out).

let session = null;

/** An error from the API, with a message a person can act on. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(describe(status, problem));
    this.status = status;
    this.code = problem && problem.code;
    this.problem = problem;
  }
}

// Messages for the problems a compliance officer meets; the API's own `detail` (written for
// people, and never echoing submitted values) follows where it adds something.
const MESSAGES = {
  invalid_api_key: 'That API key was not accepted. Check that you pasted the whole key (it starts with ck_) and that it has not been revoked.',
  invalid_token: 'Your session has ended. Sign in again.',
  token_expired: 'Your session has expired. Sign in again.',
  missing_token: 'You are not signed in. Sign in again.',
  subject_not_found: 'No person with this id is held (or they have been erased).',
  not_found: 'Nothing was found.',
  action_not_permitted: 'Your role does not allow this.',
  purpose_not_permitted: 'Your role may not act for this purpose.',
  rate_limited: 'Too many requests in a short time. Wait a moment and try again.',
  privacy_budget_exhausted: 'The privacy budget of this purpose is spent for today: it resets at midnight UTC. Questions asked earlier today can still be asked again.',
};

function describe(status, problem) {
  const code = problem && problem.code;
  const detail = problem && problem.detail;
  if (code && MESSAGES[code]) {
    return MESSAGES[code];
  }
  if (status === 401) {
    return 'Your session has ended. Sign in again.';
  }
  if (status === 403) {
    return detail ? `Not allowed: ${detail}.` : 'Your role does not allow this.';
  }
  if (status === 404) {
    return detail ? `Not found: ${detail}.` : 'Nothing was found.';
  }
  if (status === 409) {
    return detail ? `This cannot be done now: ${detail}.` : 'This cannot be done in the current state.';
  }
  if (status >= 400 && status < 500) {
    return detail ? `Please check the form: ${detail}.` : 'The service did not accept this request.';
  }
  if (status === 0) {
    return 'The service cannot be reached. Check your connection and try again.';
  }
  return 'The service could not complete this. Try again; if it keeps happening, tell the operator (the request id is in the server log).';
}

/** Exchanges an API key for a token; keeps the token, role and permissions in memory. */
export async function signIn(apiKey) {
  const body = await call('POST', '/v1/auth/token', { api_key: apiKey }, { anonymous: true });
  session = {
    token: body.access_token,
    role: body.role,
    actions: new Set(body.actions),
    purposes: body.purposes,
    expiresAt: Date.now() + body.expires_in * 1000,
  };
  return session;
}

export function signOut() {
  session = null;
}

export function currentSession() {
  return session;
}

/** Whether the signed-in role holds `action`. */
export function may(action) {
  return session !== null && session.actions.has(action);
}

async function send(method, path, body, options = {}) {
  const headers = { Accept: 'application/json' };
  if (!options.anonymous) {
    if (!session) {
      throw new ApiError(401, { code: 'missing_token' });
    }
    headers.Authorization = `Bearer ${session.token}`;
  }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, null);
  }
  if (!response.ok) {
    let problem = null;
    try {
      problem = await response.json();
    } catch {
      problem = null;
    }
    throw new ApiError(response.status, problem);
  }
  return response;
}

/** A JSON call; resolves to the parsed body. */
export async function call(method, path, body, options) {
  const response = await send(method, path, body, options);
  return response.json();
}

/** A download: resolves to the body as a Blob and the file name the server suggests. */
export async function download(path) {
  const response = await send('GET', path);
  const disposition = response.headers.get('Content-Disposition') || '';
  const match = /filename="([^"]+)"/.exec(disposition);
  return { blob: await response.blob(), name: match ? match[1] : 'export' };
}
