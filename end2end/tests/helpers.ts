import { Browser, Page, expect } from "@playwright/test";
import AxeBuilder from "@axe-core/playwright";
import { createHmac } from "node:crypto";
import * as fs from "node:fs";

export const admin = {
  email: process.env.STOEP_TEST_E2E_ADMIN_EMAIL ?? "",
  password: process.env.STOEP_TEST_E2E_ADMIN_PASSWORD ?? "",
  totpSecret: process.env.STOEP_TEST_E2E_ADMIN_TOTP ?? "",
};

/** Where the admin's signed-in browser state is kept for the run (written by global-setup.ts). */
export const ADMIN_STATE = "test-results/admin-state.json";

export const PASSWORD = "copper kettle under the stoep 71";

/** Waits until the page has hydrated (the wasm bundle marks the window). */
export async function hydrated(page: Page) {
  await page.waitForFunction(() => (window as any).__stoep_hydrated === true, null, { timeout: 20_000 });
}

function base32Decode(s: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const c of s.replace(/=+$/, "").toUpperCase()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 code for a step (what an authenticator app shows). */
export function totpAt(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac("sha1", base32Decode(secret)).update(counter).digest();
  const offset = digest[19] & 15;
  const n = ((digest[offset] & 127) << 24) | (digest[offset + 1] << 16) | (digest[offset + 2] << 8) | digest[offset + 3];
  return String(n % 1_000_000).padStart(6, "0");
}

const lastStep = new Map<string, number>();

/** A code that has not been used yet by this run (each step works once per account). */
export function nextTotp(secret: string): string {
  const now = Math.floor(Date.now() / 30_000);
  const step = Math.max(now, (lastStep.get(secret) ?? -1) + 1);
  lastStep.set(secret, step);
  return totpAt(secret, step);
}

export async function signIn(page: Page, email: string, password: string, totpSecret?: string) {
  await page.goto("/signin");
  await hydrated(page);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password", { exact: true }).fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  if (totpSecret) {
    await expect(page).toHaveURL(/\/signin\/verify/);
    await hydrated(page);
    await page.getByLabel("Code").fill(nextTotp(totpSecret));
    await page.getByRole("button", { name: "Continue" }).click();
  }
}

/** A page signed in as the admin (from the state saved by the global set-up). */
export async function adminPage(browser: Browser): Promise<Page> {
  const ctx = await browser.newContext({ storageState: fs.existsSync(ADMIN_STATE) ? ADMIN_STATE : undefined });
  const page = await ctx.newPage();
  await page.goto("/admin");
  if (page.url().includes("/signin")) {
    await signIn(page, admin.email, admin.password, admin.totpSecret);
  }
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

/** Reads the newest catcher email to `to` containing `linkPath`, as an admin, and returns that link's path and query. */
export async function linkFromMail(browser: Browser, to: string, linkPath: string): Promise<string> {
  const admin = await adminPage(browser);
  await admin.goto("/admin/mail");
  const message = admin.locator("li.mail", { hasText: to }).first();
  await expect(async () => {
    await admin.reload();
    await expect(message).toBeVisible({ timeout: 1000 });
  }).toPass({ timeout: 20_000 });
  await message.locator("summary").click();
  const text = await message.locator("pre.mail-text").innerText();
  const link = text.match(new RegExp(`https?://\\S+${linkPath.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}\\?token=[0-9a-f]+`))?.[0];
  expect(link).toBeTruthy();
  await admin.context().close();
  const url = new URL(link!);
  return url.pathname + url.search;
}

/** Signs up a customer, confirms the email through the mail catcher, and signs them in on `page`. */
export async function newVerifiedCustomer(page: Page, browser: Browser, name: string): Promise<string> {
  const email = `${unique(name.split(" ")[0].toLowerCase())}@example.com`;
  await page.goto("/signup");
  await hydrated(page);
  await page.getByLabel("Full name").fill(name);
  await page.getByLabel("Email").fill(email);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByLabel(/I have read the privacy notice/).check();
  await page.getByRole("button", { name: "Create account" }).click();
  await expect(page.getByRole("heading", { name: "Check your email" })).toBeVisible();
  await page.goto(await linkFromMail(browser, email, "/verify-email"));
  await hydrated(page);
  await page.getByRole("button", { name: "Confirm my email" }).click();
  await expect(page.getByRole("status")).toContainText("Your email is confirmed");
  await signIn(page, email, PASSWORD);
  await expect(page).toHaveURL(/\/account$/);
  return email;
}
