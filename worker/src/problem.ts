/** RFC 7807 problem details: the one error shape the Worker, the DO and the upload service share. */
const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  423: "Locked",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  460: "Checksum Mismatch",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

export function problem(status: number, detail: string, headers?: HeadersInit): Response {
  const response = Response.json(
    { type: "about:blank", title: TITLES[status] ?? "Error", status, detail },
    { status, headers },
  );
  response.headers.set("Content-Type", "application/problem+json");
  return response;
}
