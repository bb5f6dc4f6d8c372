//! Accessors shared by the session level and media sections, which both hold
//! their lines in a `lines: Vec<Line>` field.

/// Generates the shared inherent methods. `$before` lists the line types
/// that follow `c=` in RFC 8866 order, so a new `c=` goes before them.
macro_rules! section_accessors {
    ($ty:ty, [$($before:literal),*]) => {
        impl $ty {
            /// The attributes of this section, in order.
            pub fn attributes(&self) -> impl Iterator<Item = &Attribute> {
                self.lines.iter().filter_map(Line::as_attribute)
            }

            /// The first attribute with this name.
            pub fn attribute(&self, name: &str) -> Option<&Attribute> {
                self.attributes().find(|a| a.name == name)
            }

            /// The value of the first attribute with this name (`None` for a flag).
            pub fn attribute_value(&self, name: &str) -> Option<&str> {
                self.attribute(name)?.value.as_deref()
            }

            /// Whether an attribute with this name is present.
            pub fn has_attribute(&self, name: &str) -> bool {
                self.attribute(name).is_some()
            }

            /// Appends an attribute at the end of this section.
            pub fn add_attribute(&mut self, attr: impl Into<Attribute>) {
                self.lines.push(Line::Attribute(attr.into()));
            }

            /// Replaces the first attribute of the same name in place and
            /// removes any others of that name; appends it when there is none.
            pub fn set_attribute(&mut self, attr: impl Into<Attribute>) {
                let attr = attr.into();
                let first = self.lines.iter().position(
                    |l| matches!(l, Line::Attribute(a) if a.name == attr.name),
                );
                match first {
                    Some(i) => {
                        let name = attr.name.clone();
                        self.lines[i] = Line::Attribute(attr);
                        let mut index = 0;
                        self.lines.retain(|l| {
                            let keep = index <= i
                                || !matches!(l, Line::Attribute(a) if a.name == name);
                            index += 1;
                            keep
                        });
                    }
                    None => self.add_attribute(attr),
                }
            }

            /// Removes every attribute with this name; returns how many.
            pub fn remove_attributes(&mut self, name: &str) -> usize {
                let before = self.lines.len();
                self.lines
                    .retain(|l| !matches!(l, Line::Attribute(a) if a.name == name));
                before - self.lines.len()
            }

            /// Keeps only the attributes for which `keep` is true; other lines stay.
            pub fn retain_attributes(&mut self, mut keep: impl FnMut(&Attribute) -> bool) {
                self.lines.retain(|l| match l {
                    Line::Attribute(a) => keep(a),
                    _ => true,
                });
            }

            /// Every attribute named `T::NAME` that parses as `T`, in order;
            /// malformed ones are skipped (see `validate` to find them).
            pub fn typed_attributes<T: AttributeValue>(&self) -> impl Iterator<Item = T> + '_ {
                self.attributes()
                    .filter(|a| a.name == T::NAME)
                    .filter_map(|a| T::from_attribute(a).ok())
            }

            /// The first attribute named `T::NAME` that parses as `T`.
            pub fn typed_attribute<T: AttributeValue>(&self) -> Option<T> {
                self.typed_attributes().next()
            }

            /// This section's own `c=` line.
            pub fn connection(&self) -> Option<&Connection> {
                self.lines.iter().find_map(|l| match l {
                    Line::Connection(c) => Some(c),
                    _ => None,
                })
            }

            /// This section's own `c=` line, for editing.
            pub fn connection_mut(&mut self) -> Option<&mut Connection> {
                self.lines.iter_mut().find_map(|l| match l {
                    Line::Connection(c) => Some(c),
                    _ => None,
                })
            }

            /// Replaces the `c=` line(s) with one, or inserts it where RFC 8866
            /// puts it.
            pub fn set_connection(&mut self, connection: impl Into<Connection>) {
                let line = Line::Connection(connection.into());
                match self.lines.iter().position(|l| matches!(l, Line::Connection(_))) {
                    Some(i) => {
                        self.lines[i] = line;
                        let mut index = 0;
                        self.lines.retain(|l| {
                            let keep = index <= i || !matches!(l, Line::Connection(_));
                            index += 1;
                            keep
                        });
                    }
                    None => {
                        let at = self
                            .lines
                            .iter()
                            .position(|l| [$($before),*].contains(&l.kind()))
                            .unwrap_or(self.lines.len());
                        self.lines.insert(at, line);
                    }
                }
            }

            /// Sets this section's `c=` to `IN IP4|IP6 <ip>`.
            pub fn set_connection_ip(&mut self, ip: std::net::IpAddr) {
                self.set_connection(Connection::new(ip));
            }

            /// Removes the `c=` line(s); returns whether there was one.
            pub fn remove_connection(&mut self) -> bool {
                let before = self.lines.len();
                self.lines.retain(|l| !matches!(l, Line::Connection(_)));
                before != self.lines.len()
            }

            /// `a=ice-ufrag` at this level.
            pub fn ice_ufrag(&self) -> Option<&str> {
                self.attribute_value("ice-ufrag").map(str::trim)
            }

            /// `a=ice-pwd` at this level.
            pub fn ice_pwd(&self) -> Option<&str> {
                self.attribute_value("ice-pwd").map(str::trim)
            }

            /// The `a=ice-options` tokens at this level (`trickle`, `ice2`...).
            pub fn ice_options(&self) -> impl Iterator<Item = &str> {
                self.attributes()
                    .filter(|a| a.name == "ice-options")
                    .filter_map(|a| a.value.as_deref())
                    .flat_map(str::split_ascii_whitespace)
            }

            /// The first valid `a=fingerprint` at this level.
            pub fn fingerprint(&self) -> Option<Fingerprint> {
                self.typed_attribute()
            }

            /// Every valid `a=fingerprint` at this level.
            pub fn fingerprints(&self) -> impl Iterator<Item = Fingerprint> + '_ {
                self.typed_attributes()
            }

            /// `a=setup` at this level.
            pub fn setup(&self) -> Option<Setup> {
                self.typed_attribute()
            }

            /// The direction attribute at this level, if any.
            pub fn direction(&self) -> Option<Direction> {
                self.attributes()
                    .filter(|a| a.value.is_none())
                    .find_map(|a| Direction::from_name(&a.name))
            }

            /// Sets the direction attribute: replaces the first one in place,
            /// removes the others, appends when there is none.
            pub fn set_direction(&mut self, direction: Direction) {
                let is_dir =
                    |l: &Line| matches!(l, Line::Attribute(a) if Direction::from_name(&a.name).is_some());
                match self.lines.iter().position(is_dir) {
                    Some(i) => {
                        self.lines[i] = Line::Attribute(direction.into());
                        let mut index = 0;
                        self.lines.retain(|l| {
                            let keep = index <= i || !is_dir(l);
                            index += 1;
                            keep
                        });
                    }
                    None => self.add_attribute(direction),
                }
            }

            /// Every valid `a=extmap` at this level.
            pub fn extmaps(&self) -> impl Iterator<Item = ExtMap> + '_ {
                self.typed_attributes()
            }
        }
    };
}

pub(crate) use section_accessors;
