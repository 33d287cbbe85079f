import { Browser, Page, expect } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";

export const admin = {
  email: process.env.STOEP_TEST_E2E_ADMIN_EMAIL ?? "",
  password: process.env.STOEP_TEST_E2E_ADMIN_PASSWORD ?? "",
};

export const PASSWORD = "copper kettle under the stoep 71";

/** Waits until the page has hydrated (the wasm bundle marks the body). */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__stoep_hydrated === true, null, { timeout: 20_000 });
}

export async function signIn(page: Page, email: string, password: string) {
  await page.goto("/signin");
  await hydrated(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

export async function adminPage(browser: Browser): Promise<Page> {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await signIn(page, admin.email, admin.password);
  await expect(page).toHaveURL(/\/admin$/);
  return page;
}

/** No serious or critical accessibility violations on the current page. */
export async function checkA11y(page: Page) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  expect(bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`)).toEqual([]);
}

export function unique(prefix: string) {
  return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
