// The API: one gRPC-web transport to the origin that served the console, the bearer token
// from session storage on every call, a client per service, the permission of an RPC as its
// proto options say, the introspection of what the caller may call, and the readable text
// of an API error.
import { type DescMethod, getOption, hasOption } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { http } from "./gen/google/api/annotations_pb";
import {
  AssignmentService,
  PolicyService as OrgPolicyService,
  RoleService as OrgRoleService,
} from "./gen/iamd/accounts/v1/iam_pb";
import { OrganizationService } from "./gen/iamd/accounts/v1/organizations_pb";
import { AdminService } from "./gen/iamd/admin/v1/admin_pb";
import { AuthzService } from "./gen/iamd/authz/v1/authz_pb";
import { HistoryService } from "./gen/iamd/history/v1/history_pb";
import {
  IntrospectionService,
  TeamService,
  TokenService,
  UserService,
} from "./gen/iamd/iam/v2/identity_pb";
import { PolicyService, RoleService, TenantService } from "./gen/iamd/iam/v2/policy_pb";
import { method as methodRule } from "./gen/iamd/options_pb";

const TOKEN_KEY = "iamd.console.token";

/** The caller's API token: in session storage (this tab only), never in a cookie. */
export const session = {
  token(): string {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  },
  signIn(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

const bearer: Interceptor = (next) => async (request) => {
  const token = session.token();
  if (token) {
    request.header.set("Authorization", `Bearer ${token}`);
  }
  return next(request);
};

// Same origin: iamd serves the console and the API on one port, so no CORS is involved.
const transport = createGrpcWebTransport({ baseUrl: location.origin, interceptors: [bearer] });

export const api = {
  organizations: createClient(OrganizationService, transport),
  admin: createClient(AdminService, transport),
  iamPolicies: createClient(PolicyService, transport),
  iamRoles: createClient(RoleService, transport),
  tenants: createClient(TenantService, transport),
  users: createClient(UserService, transport),
  teams: createClient(TeamService, transport),
  tokens: createClient(TokenService, transport),
  introspection: createClient(IntrospectionService, transport),
  orgPolicies: createClient(OrgPolicyService, transport),
  orgRoles: createClient(OrgRoleService, transport),
  assignments: createClient(AssignmentService, transport),
  authz: createClient(AuthzService, transport),
  history: createClient(HistoryService, transport),
};

/** A REST call on a concrete path, and the action it needs. */
export interface Permission {
  method: "get" | "put" | "post" | "delete" | "patch";
  path: string;
  action: string;
}

/**
 * The permission of an RPC, read from its proto options: the verb and path template of its
 * `google.api.http` rule, the action of its `(iamd.method)` rule. `values` fill the
 * template's `{field}` placeholders, by proto field name: `{ organization_id: "…" }`.
 */
export function permission(desc: DescMethod, values: Record<string, string> = {}): Permission {
  const { pattern } = getOption(desc, http);
  if (!hasOption(desc, methodRule) || pattern.case === undefined || pattern.case === "custom") {
    throw new Error(`${desc.parent.typeName}.${desc.name} has no REST route or no (iamd.method) option`);
  }
  return { method: pattern.case, path: fill(pattern.value, values), action: getOption(desc, methodRule).action };
}

/** `/organizations/{organization_id}` with `{ organization_id: "o1" }` is `/organizations/o1`. */
export function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{([\w.]+)(?:=[^}]*)?\}/g, (_, field: string) => {
    const value = values[field];
    if (value === undefined) {
      throw new Error(`the path ${template} needs a value for {${field}}`);
    }
    return encodeURIComponent(value);
  });
}

/** Asks the server which of `permissions` the caller has; answers a test of one of them. */
export async function introspect(permissions: Permission[]): Promise<(p: Permission) => boolean> {
  const paths = [...new Set(permissions.map((p) => p.path))];
  if (paths.length === 0) {
    return () => true;
  }
  const { endpoints } = await api.introspection.introspect({ paths });
  return (p) => endpoints[p.path]?.[p.method] ?? false;
}

const codeText: Partial<Record<Code, string>> = {
  [Code.PermissionDenied]: "Permission denied",
  [Code.Unauthenticated]: "Not signed in, or the token is not valid (sign in again)",
  [Code.NotFound]: "Not found",
  [Code.AlreadyExists]: "Already exists",
  [Code.InvalidArgument]: "Invalid input",
  [Code.FailedPrecondition]: "Not possible now",
  [Code.Aborted]: "Someone else changed this meanwhile; reload and try again",
  [Code.ResourceExhausted]: "The server is busy or a limit was reached",
  [Code.Unavailable]: "The server is unavailable; try again",
  [Code.DeadlineExceeded]: "The server took too long",
  [Code.Unimplemented]: "This server does not implement this call yet",
  [Code.OutOfRange]: "Out of range",
  [Code.Internal]: "The server failed",
  [Code.Unknown]: "The request failed",
};

/** One readable sentence for an error: what went wrong in words, then the server's message. */
export function errorText(error: unknown): string {
  const e = ConnectError.from(error);
  const what = codeText[e.code] ?? "The request failed";
  const name = Code[e.code] ?? String(e.code);
  const message = e.rawMessage.trim();
  if (e.code === Code.Unknown && /fetch|network/i.test(message)) {
    return `Cannot reach the server (${message})`;
  }
  return message ? `${what} (${name}): ${message}` : `${what} (${name})`;
}

/** Whether an error is the server refusing the caller a permission. */
export function isPermissionDenied(error: unknown): boolean {
  return ConnectError.from(error).code === Code.PermissionDenied;
}

/** Whether the token itself was refused. */
export function isUnauthenticated(error: unknown): boolean {
  return ConnectError.from(error).code === Code.Unauthenticated;
}
