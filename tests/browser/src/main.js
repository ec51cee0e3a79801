// Calls iamd's OrganizationService over gRPC-web from the page's own origin, which is not
// the API's. Query string: ?api=http://127.0.0.1:PORT&token=SECRET[&name=NAME]
// Writes {pageOrigin, api, ok: {id, name}, error: {code, codeName, message}} as JSON into
// <pre id="result"> and sets data-done on it when both calls have finished.
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { OrganizationService } from "./gen/iamd/accounts/v1/organizations_pb.js";

// A well-formed UUID that the server never hands out (its ids are random v4 UUIDs).
const MISSING_ID = "00000000-0000-4000-8000-000000000000";

function outcome(error) {
  const e = ConnectError.from(error);
  return { code: e.code, codeName: Code[e.code], message: e.rawMessage };
}

async function main() {
  const params = new URLSearchParams(window.location.search);
  const baseUrl = params.get("api");
  const token = params.get("token") ?? "";
  const name = params.get("name") ?? `browser-${Date.now()}-${Math.floor(Math.random() * 1e6)}`;
  const report = { pageOrigin: window.location.origin, api: baseUrl, ok: null, error: null };
  if (!baseUrl) {
    throw new Error("the page needs ?api=<base URL of iamd>");
  }

  const bearer = (next) => async (req) => {
    if (token) {
      req.header.set("Authorization", `Bearer ${token}`);
    }
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [bearer] });
  const client = createClient(OrganizationService, transport);

  // 1. Success: a new organization.
  try {
    const response = await client.createOrganization({ name });
    const org = response.organization;
    report.ok = { id: org?.id ?? "", name: org?.name ?? "" };
  } catch (error) {
    report.ok = { failed: outcome(error) };
  }

  // 2. Error: an organization that does not exist (NotFound = 5).
  try {
    const response = await client.getOrganization({ organizationId: MISSING_ID });
    report.error = { unexpectedSuccess: response.organization?.id ?? "" };
  } catch (error) {
    report.error = outcome(error);
  }
  return report;
}

const result = document.getElementById("result");
main()
  .then((report) => {
    result.textContent = JSON.stringify(report);
  })
  .catch((error) => {
    result.textContent = JSON.stringify({ fatal: String(error?.stack ?? error) });
  })
  .finally(() => {
    result.setAttribute("data-done", "true");
  });
