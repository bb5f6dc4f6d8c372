fn main() {
    afl::fuzz!(|data: &[u8]| callgate_fuzz::sip_message(data));
}
