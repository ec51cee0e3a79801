// Opens the page given as argv[2] in headless Debian Chromium, waits until the page sets
// data-done on #result, and prints the result JSON on one stdout line. Browser console
// errors, page errors and failed requests go to stderr. Exits 1 on a timeout or any failure.
//
//   node run.mjs "http://127.0.0.1:8001/index.html?api=http://127.0.0.1:8002&token=..."
import { chromium } from "playwright-core";

const url = process.argv[2];
const timeout = Number(process.env.BROWSER_TEST_TIMEOUT_MS ?? 20000);
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
if (!url) {
  console.error("usage: node run.mjs <page URL>");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  timeout,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let status = 0;
try {
  const page = await browser.newPage();
  page.on("console", (message) => {
    if (message.type() === "error" || message.type() === "warning") {
      console.error(`browser console ${message.type()}: ${message.text()}`);
    }
  });
  page.on("pageerror", (error) => console.error(`page error: ${error.stack ?? error}`));
  page.on("requestfailed", (request) =>
    console.error(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`),
  );
  await page.goto(url, { timeout });
  await page.waitForSelector("#result[data-done]", { timeout, state: "attached" });
  const text = await page.textContent("#result");
  // One line, whatever the page wrote.
  console.log(JSON.stringify(JSON.parse(text ?? "null")));
  if (process.env.BROWSER_TEST_SCREENSHOT) {
    await page.screenshot({ path: process.env.BROWSER_TEST_SCREENSHOT, fullPage: true });
  }
} catch (error) {
  console.error(`browser test failed: ${error?.stack ?? error}`);
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
