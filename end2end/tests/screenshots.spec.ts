import { test } from "@playwright/test";
import { adminPage, checkA11y, hydrated } from "./helpers";

// Screenshots of the main pages at phone and desktop widths, kept as test artifacts in
// end2end/artifacts/ (the README shows some of them).
const widths = [
  { name: "phone", width: 360, height: 780 },
  { name: "desktop", width: 1280, height: 860 },
];

test("screenshots of the main pages", async ({ browser }) => {
  const admin = await adminPage(browser);
  const state = await admin.context().storageState();
  for (const w of widths) {
    const anonContext = await browser.newContext({ viewport: { width: w.width, height: w.height } });
    const anon = await anonContext.newPage();
    for (const [name, path] of [["home", "/"], ["signin", "/signin"], ["signup", "/signup"], ["book", "/book"], ["book-times", "/book/1"]]) {
      await anon.goto(path);
      await hydrated(anon);
      if (w.name === "desktop") await checkA11y(anon);
      await anon.screenshot({ path: `artifacts/${name}-${w.name}.png`, fullPage: true });
    }
    await anonContext.close();
    const context = await browser.newContext({ viewport: { width: w.width, height: w.height }, storageState: state });
    const page = await context.newPage();
    for (const [name, path] of [["admin-overview", "/admin"], ["admin-integrations", "/admin/integrations"], ["admin-mail", "/admin/mail"], ["admin-people", "/admin/people"], ["admin-setup", "/admin/setup"], ["admin-bookings", "/admin/bookings"], ["week", "/staff"], ["admin-payments", "/admin/payments"], ["integration-map", "/admin/integrations/map"], ["customers", "/customers"], ["standins", "/admin/standins"]]) {
      await page.goto(path);
      await hydrated(page);
      if (w.name === "desktop") await checkA11y(page);
      await page.screenshot({ path: `artifacts/${name}-${w.name}.png`, fullPage: true });
    }
    await context.close();
  }
});
