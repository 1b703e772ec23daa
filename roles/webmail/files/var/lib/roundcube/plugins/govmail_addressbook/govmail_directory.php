<?php
/**
 * The province's LDAP address book with the directory's agencies and units as its groups and
 * Vietnamese collation (see govmail_addressbook.php for why and from where).
 *
 * Groups are rcube_ldap 'group_filters' (virtual groups: a base DN, a scope and a filter), read
 * from the directory on first need in a request: one subtree search of (objectClass=
 * organizationalUnit) under the book's base_dn, attributes ou and description. A group's id is
 * rcube_ldap::dn_encode(<its DN>); its listing is the book's own filter over its subtree.
 */
class govmail_directory extends rcube_ldap
{
    /** @var Collator|null ICU collator of the locale given (null: php-intl missing, byte order) */
    private $collator;

    /** @var array|null id => ['name' => display name, 'dn' => DN], null until read */
    private $units = null;

    /**
     * @param array  $p         rcube_ldap properties (config govmail_addressbook)
     * @param bool   $debug     ldap_debug
     * @param string $domain    the user's mail domain
     * @param string $collation ICU locale of the sort order (vi_VN)
     */
    function __construct($p, $debug = false, $domain = null, $collation = 'vi_VN')
    {
        unset($p['groups'], $p['group_filters']);
        parent::__construct($p, $debug, $domain);
        $this->groups = true;
        $this->collator = class_exists('Collator') ? new Collator($collation) : null;
    }

    /** Compares two strings in the book's collation (-1, 0, 1). */
    private function collate($a, $b)
    {
        return $this->collator ? $this->collator->compare($a, $b) : strcmp($a, $b);
    }

    private static function first($entry, $attr)
    {
        $value = $entry[$attr] ?? '';
        return is_array($value) ? (string) ($value[0] ?? '') : (string) $value;
    }

    /**
     * The directory's units under base_dn, read once per request and handed to rcube_ldap as
     * its group_filters: id => name, dn, base_dn, scope sub, the book's filter. Sorted by name
     * in the collation. An unreadable directory gives no groups (the book still lists people).
     */
    private function units()
    {
        if ($this->units !== null) {
            return $this->units;
        }
        $this->units = [];
        if (!$this->ready) {
            return $this->units;
        }
        $base = $this->prop['base_dn'];
        $result = $this->ldap->search($base, '(objectClass=organizationalUnit)', 'sub', ['ou', 'description']);
        $names = [];
        foreach ($result ?: [] as $entry) {
            $dn = $entry['dn'] ?? $result->get_dn();
            if (strcasecmp($dn, $base) !== 0) {
                $names[$dn] = self::first($entry, 'description') ?: self::first($entry, 'ou');
            }
        }
        $units = [];
        foreach ($names as $dn => $name) {
            // a sub-unit is shown under its agency's name: "Agency › Unit"
            $path = [$name];
            $parent = $dn;
            while (($comma = strpos($parent, ',')) !== false) {
                $parent = substr($parent, $comma + 1);
                if (isset($names[$parent])) {
                    array_unshift($path, $names[$parent]);
                }
            }
            $units[self::dn_encode($dn)] = [
                'name'    => implode(' › ', $path),
                'dn'      => $dn,
                'base_dn' => $dn,
                'scope'   => 'sub',
                'filter'  => $this->prop['filter'] ?? '(objectClass=*)',
            ];
        }
        uasort($units, function ($a, $b) { return $this->collate($a['name'], $b['name']); });
        $this->units = $units;
        // rcube_ldap lists group_filters as its groups and searches base_dn/filter when one is chosen
        $this->prop['group_filters'] = array_map(function ($unit) {
            return ['name' => $unit['name'], 'base_dn' => $unit['base_dn'], 'scope' => 'sub', 'filter' => $unit['filter']];
        }, $units);
        return $this->units;
    }

    /** The units as Roundcube's groups ([ID, name, ...]), those whose name holds $search if given. */
    function list_groups($search = null, $mode = 0)
    {
        if (!$this->units()) {
            return [];  // (rcube_ldap would look for 'groups' entries it has no configuration of)
        }
        $groups = parent::list_groups(null, $mode);
        if ($search !== null && $search !== '') {
            $groups = array_values(array_filter($groups, function ($group) use ($search, $mode) {
                return $this->compare_search_value('name', $group['name'], mb_strtolower($search), $mode);
            }));
        }
        return $groups;
    }

    /** Chooses a unit (its id from list_groups) or the whole book (0/null); an unknown id lists nothing. */
    function set_group($group_id)
    {
        $units = $this->units();
        if ($group_id && !isset($units[$group_id])) {
            $this->prop['group_filters'][$group_id] = ['name' => '', 'base_dn' => $this->prop['base_dn'], 'scope' => 'base',
                'filter' => '(!(objectClass=*))'];
        }
        parent::set_group($group_id);
    }

    /** A unit's properties: ID and name (false if there is no such unit). */
    function get_group($group_id)
    {
        $units = $this->units();
        return isset($units[$group_id]) ? ['ID' => $group_id, 'name' => $units[$group_id]['name']] : false;
    }

    /** The units a contact belongs to (its agency and units above it): id => name. */
    function get_record_groups($contact_id)
    {
        $dn = self::dn_decode($contact_id);
        $groups = [];
        foreach ($this->units() as $id => $unit) {
            $suffix = ',' . $unit['dn'];
            if (strlen($dn) > strlen($suffix) && strcasecmp(substr($dn, -strlen($suffix)), $suffix) === 0) {
                $groups[$id] = $unit['name'];
            }
        }
        return $groups;
    }

    /**
     * usort callback of rcube_ldap's listings: the sort column (addressbook_sort_col), then the
     * full name (cn), in the collation; a missing sort value sorts first.
     */
    function _entry_sort_cmp($a, $b)
    {
        $order = $this->collate($a[$this->sort_col][0] ?? '', $b[$this->sort_col][0] ?? '');
        return $order ?: $this->collate($a['cn'][0] ?? '', $b['cn'][0] ?? '');
    }
}
