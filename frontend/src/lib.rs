//! The browser half of Stoep: hydrates the server-rendered page so its interactive parts come alive.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // Lets browser tests wait for hydration rather than guess.
    let _ = js_sys::Reflect::set(&js_sys::global(), &"__stoep_hydrated".into(), &true.into());
}
